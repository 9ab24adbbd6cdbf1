"""``/api/v1/identity``: workload certificates (SPIFFE X509-SVIDs), the trust bundle, the CA.

A sidecar sends a CSR with its service's join token and gets a leaf for exactly
``spiffe://<trust domain>/ns/<namespace>/sa/<service>``, the chain to send with it, and
the trust bundle to check its peers against; it renews at about 2/3 of the lifetime.
Refusals: 400 for a CSR the CA will not sign, 403 for one asking for another identity
(and for the admin token, which has no identity), 429 past the token's rate. Every
issued certificate is recorded. The trust bundle is public. The admin sees the CA,
the records, and starts root rotations.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from typing import Annotated, Literal
from uuid import UUID

from cryptography import x509
from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from meshpy.api import problems
from meshpy.api.deps import AdminDep, JoinTokenDep, StateDep, StoreDep
from meshpy.api.schemas import DNS_LABEL
from meshpy.ca import certs
from meshpy.ca.authority import CAError
from meshpy.ca.csr import CSRRefusedError, checked_public_key
from meshpy.ca.rotation import RotationError
from meshpy.ca.spiffeid import workload_id
from meshpy.registry import repository
from meshpy.registry.models import IssuedCertificate

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/identity", tags=["identity"])

MAX_CSR_CHARS = 16384
RootStateName = Literal["active", "next", "retiring"]


# --- bodies ---------------------------------------------------------------------------------


class CertificateRequest(BaseModel):
    """A sidecar's request for its workload certificate."""

    model_config = ConfigDict(extra="forbid")

    csr: str = Field(
        min_length=1,
        max_length=MAX_CSR_CHARS,
        description="A PKCS#10 certificate signing request, PEM, whose one URI SAN is the "
        "SPIFFE ID of the join token's service.",
    )
    instance: UUID | None = Field(
        default=None, description="The instance the certificate is for (its registration id)."
    )


class IssuedCertificatePublic(BaseModel):
    """A new workload certificate."""

    identity: str = Field(description="The SPIFFE ID in the certificate.")
    certificate_chain: str = Field(description="PEM: the leaf, then the intermediate.")
    trust_bundle: str = Field(description="PEM: every root to trust peers' chains against.")
    serial: str = Field(description="The leaf's serial number, hex.")
    not_before: datetime
    not_after: datetime


class BundleRoot(BaseModel):
    """A root of the trust bundle."""

    fingerprint_sha256: str
    not_after: datetime
    state: RootStateName = Field(
        description="active: its intermediate signs; next: trusted ahead of a switch; "
        "retiring: trusted until the leaves it signed expire."
    )


class TrustBundle(BaseModel):
    """The roots workloads of the trust domain trust."""

    trust_domain: str
    pem: str = Field(description="Every root, PEM, concatenated.")
    roots: list[BundleRoot]


class CertificateInfo(BaseModel):
    """One certificate, as people read it."""

    subject: str = Field(description="RFC 4514; empty for a workload certificate.")
    issuer: str
    serial: str = Field(description="Hex.")
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str


class RootPublic(CertificateInfo):
    """A root of the CA."""

    generation: int
    state: RootStateName
    key_held: bool = Field(description="Whether meshpy has the root's private key.")


class IntermediatePublic(CertificateInfo):
    """The intermediate that signs workload certificates now."""

    generation: int


class RotationPublic(BaseModel):
    """Where root rotation stands; the times are those of the last rotation, if any."""

    phase: Literal["stable", "trust-new-root", "sign-with-new"]
    started_at: datetime | None = None
    signing_switch_at: datetime | None = Field(
        default=None, description="When the new intermediate starts signing."
    )
    old_root_removed_at: datetime | None = Field(
        default=None, description="When the old root leaves the trust bundle."
    )


class CAPublic(BaseModel):
    """The certificate authority."""

    trust_domain: str
    cert_ttl_s: float = Field(description="Lifetime of new workload certificates.")
    roots: list[RootPublic] = Field(description="The trust bundle, the signing root first.")
    intermediate: IntermediatePublic
    rotation: RotationPublic


class CertificateRecord(BaseModel):
    """A certificate the CA issued."""

    serial: str
    identity: str
    namespace: str
    service: str
    instance: str | None
    token_id: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    chain: list[CertificateInfo] = Field(description="The leaf, then its intermediate.")
    certificate_chain: str = Field(description="The same, PEM.")


class CertificateList(BaseModel):
    """Issued certificates, newest first."""

    items: list[CertificateRecord]


# --- workloads ------------------------------------------------------------------------------


@router.post("/certificates", status_code=status.HTTP_201_CREATED)
async def issue_certificate(
    body: CertificateRequest, state: StateDep, who: JoinTokenDep
) -> IssuedCertificatePublic:
    """Sign the CSR for the join token's service identity, and record the certificate."""
    namespace, service, token_id = who.namespace, who.service, who.token_id
    if who.admin or namespace is None or service is None or token_id is None:
        raise problems.forbidden(
            "certificates are issued to join tokens: the admin token has no workload identity"
        )
    wait = state.cert_limits.take(token_id)
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise problems.ProblemError(
            429,
            f"this join token asked for too many certificates ({state.settings.cert_rate:g} a "
            f"minute, {state.settings.cert_burst} at once): retry in {retry}s",
            slug="rate-limited",
            title="Too many requests",
            headers={"Retry-After": str(retry)},
        )
    identity = workload_id(state.settings.trust_domain, namespace, service)
    try:
        public_key = checked_public_key(body.csr, identity)
    except CSRRefusedError as exc:
        if exc.wrong_identity:
            raise problems.ProblemError(
                403, exc.detail, slug="identity-not-allowed", title="Identity not allowed"
            ) from None
        raise problems.ProblemError(
            400, exc.detail, slug="csr-refused", title="Certificate signing request refused"
        ) from None
    instance_id = None
    if body.instance is not None:
        instance_id = str(body.instance)
        row = await state.store.read(repository.find_instance, instance_id)
        if row is None:
            raise problems.not_found(f"instance {instance_id}")
        if not who.may_manage(row.namespace, row.service):
            raise problems.forbidden(
                f"instance {instance_id} is of {row.namespace}/{row.service}, "
                f"not {namespace}/{service}"
            )
    try:
        issued = state.authority.issue(
            public_key, identity, timedelta(seconds=state.settings.cert_ttl)
        )
    except CAError as exc:
        raise _ca_unavailable(exc) from None
    record = repository.NewCertificate(
        serial=issued.serial_hex,
        identity=identity,
        namespace=namespace,
        service=service,
        instance_id=instance_id,
        token_id=token_id,
        not_before=issued.not_before,
        not_after=issued.not_after,
        issued_at=issued.issued_at,
        chain_pem=issued.chain_pem,
    )
    await state.store.write(repository.record_certificate, record)
    return IssuedCertificatePublic(
        identity=identity,
        certificate_chain=issued.chain_pem,
        trust_bundle=issued.bundle_pem,
        serial=issued.serial_hex,
        not_before=issued.not_before,
        not_after=issued.not_after,
    )


@router.get("/trust-bundle")
async def get_trust_bundle(state: StateDep) -> TrustBundle:
    """The roots of the trust domain (public: no token needed)."""
    ca = state.authority.status()
    roots = [
        BundleRoot(
            fingerprint_sha256=certs.fingerprint(r.certificate),
            not_after=r.certificate.not_valid_after_utc,
            state=r.state.value,
        )
        for r in ca.roots
    ]
    return TrustBundle(trust_domain=ca.trust_domain, pem=ca.bundle_pem, roots=roots)


# --- admin ----------------------------------------------------------------------------------


@router.get("/ca")
async def get_ca(state: StateDep, _: AdminDep) -> CAPublic:
    """The trust domain, the roots and their states, the signing intermediate, the rotation."""
    return _ca_public(state)


@router.post("/ca/rotate")
async def rotate_ca(state: StateDep, _: AdminDep) -> CAPublic:
    """Start a root rotation (409 while one is under way).

    The new root joins the trust bundle now; its intermediate starts signing one leaf
    lifetime later; the old root leaves the bundle one more leaf lifetime after that.
    """
    ttl = timedelta(seconds=state.settings.cert_ttl)
    try:
        await asyncio.to_thread(state.authority.rotate, ttl)
    except RotationError as exc:
        raise problems.conflict(str(exc)) from None
    except CAError as exc:
        raise _ca_unavailable(exc) from None
    return _ca_public(state)


@router.get("/certificates")
async def list_certificates(
    store: StoreDep,
    _: AdminDep,
    namespace: str | None = Query(default=None, pattern=DNS_LABEL, max_length=63),
    service: str | None = Query(default=None, pattern=DNS_LABEL, max_length=63),
    instance: Annotated[UUID | None, Query(description="Only this instance's.")] = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> CertificateList:
    """Issued certificates, newest first."""
    rows = await store.read(
        repository.list_certificates,
        namespace=namespace,
        service=service,
        instance_id=None if instance is None else str(instance),
        limit=limit,
    )
    return CertificateList(items=[_record(r) for r in rows])


# --- helpers --------------------------------------------------------------------------------


def _ca_unavailable(exc: CAError) -> problems.ProblemError:
    return problems.ProblemError(
        503, str(exc), slug="ca-unavailable", title="Certificate authority unavailable"
    )


def _info(cert: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:032x}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint_sha256=certs.fingerprint(cert),
    )


def _ca_public(state: StateDep) -> CAPublic:
    ca = state.authority.status()
    rot = ca.rotation
    return CAPublic(
        trust_domain=ca.trust_domain,
        cert_ttl_s=state.settings.cert_ttl,
        roots=[
            RootPublic(
                **_info(r.certificate).model_dump(),
                generation=r.generation,
                state=r.state.value,
                key_held=r.key_held,
            )
            for r in ca.roots
        ],
        intermediate=IntermediatePublic(
            **_info(ca.intermediate).model_dump(), generation=ca.signer_generation
        ),
        rotation=RotationPublic(
            phase=ca.phase.value,
            started_at=rot.started_at if rot else None,
            signing_switch_at=rot.switch_at if rot else None,
            old_root_removed_at=rot.complete_at if rot else None,
        ),
    )


def _record(row: IssuedCertificate) -> CertificateRecord:
    chain = x509.load_pem_x509_certificates(row.chain_pem.encode("ascii"))
    return CertificateRecord(
        serial=row.serial,
        identity=row.identity,
        namespace=row.namespace,
        service=row.service,
        instance=row.instance_id,
        token_id=row.token_id,
        not_before=row.not_before,
        not_after=row.not_after,
        issued_at=row.issued_at,
        chain=[_info(c) for c in chain],
        certificate_chain=row.chain_pem,
    )
