"""``/api/v1/proxies``: each sidecar's config snapshot by long-poll, its acks, and sync status.

A sidecar asks ``GET /api/v1/proxies/{instance}/config?wait=30s`` with ``If-None-Match``
set to the ETag of the config it runs. The answer comes at once when its snapshot
differs, else as soon as a change makes it differ, else ``304`` when the wait ends.
(``?version=N`` without an ETag waits for any snapshot version above N instead: simpler
for a client, but it is woken by every registry change.) It
then applies the snapshot and reports with ``PUT .../ack`` (the version and ETag it
applied, or the error that made it reject the snapshot). ``GET /api/v1/proxies`` shows
every proxy as ``SYNCED`` (runs the current snapshot), ``STALE`` (runs an older one or
rejected the current one) or ``NOT SENT`` (never acked a snapshot), with its instance's
lease and the newest certificate the CA issued to it.
"""

from __future__ import annotations

import asyncio
import gzip
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Header, Path, Query, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from meshpy import snapshot
from meshpy.api import problems
from meshpy.api.deps import AdminDep, JoinTokenDep, StateDep
from meshpy.api.state import AppState
from meshpy.durations import parse_seconds
from meshpy.registry import repository
from meshpy.registry.models import ConfigAck
from meshpy.resources._common import is_dns_label

__all__ = ["MAX_WAIT_S", "router"]

router = APIRouter(prefix="/api/v1/proxies", tags=["proxies"])

MAX_WAIT_S = 60.0
_GZIP_FROM = 4096
"""Bodies smaller than this are sent as they are."""
ProxyPath = Annotated[UUID, Path(description="The instance id of the proxy's registration.")]
SyncStatus = Literal["SYNCED", "STALE", "NOT SENT"]
InstanceState = Literal["starting", "healthy", "unhealthy", "draining"]


class Ack(BaseModel):
    """What a proxy did with the snapshot it was sent."""

    version: int = Field(ge=0, le=2**63 - 1, description="The snapshot's version.")
    etag: str = Field(min_length=1, max_length=64, description="The snapshot's ETag.")
    error: str | None = Field(
        default=None, max_length=4096, description="Why it was rejected; absent when applied."
    )


class ProxyCertificate(BaseModel):
    """A certificate the CA issued to a proxy, by its validity."""

    serial: str
    not_before: datetime
    not_after: datetime


class ProxyStatus(BaseModel):
    """One proxy's config sync status, lease and certificate."""

    instance: str
    namespace: str
    service: str
    status: SyncStatus
    acked_version: int | None = Field(description="Version of the snapshot it last acked.")
    current_version: int = Field(description="Revision the current snapshot was built at.")
    error: str | None = Field(description="Why it rejected its last snapshot, if it did.")
    state: InstanceState = Field(description="Its instance's state.")
    lease_expires_at: datetime | None = Field(
        description="When its lease runs out unless renewed; null once it has left."
    )
    certificate: ProxyCertificate | None = Field(
        description="The newest certificate the CA issued to it; null before its first."
    )


def _wait_seconds(text: str) -> float:
    try:
        seconds = parse_seconds(text)
    except ValueError:
        raise problems.invalid(
            [problems.ErrorItem(path="wait", message=f"{text!r} is not a duration")]
        ) from None
    if not 0 <= seconds <= MAX_WAIT_S:
        raise problems.invalid(
            [problems.ErrorItem(path="wait", message=f"must be between 0 and {MAX_WAIT_S:g}s")]
        )
    return seconds


_MAX_UPSTREAMS = 64


def _upstreams(text: str, outbound_port: int) -> tuple[snapshot.Upstream, ...]:
    """``payment-db:5433,ledger.billing:6000`` -> Upstreams; 400 naming the bad item."""
    found: list[snapshot.Upstream] = []
    ports = {outbound_port}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, port_text = item.rpartition(":")
        service, _, namespace = name.partition(".")
        port = int(port_text) if port_text.isdigit() else 0
        if not (is_dns_label(service) and (not namespace or is_dns_label(namespace))):
            problem = f"{item!r}: give SERVICE[.NAMESPACE]:PORT"
        elif not 0 < port < 65536 or port in ports:
            problem = f"{item!r}: the port must be 1-65535 and used once"
        elif len(found) == _MAX_UPSTREAMS:
            problem = f"at most {_MAX_UPSTREAMS} upstreams"
        else:
            found.append(snapshot.Upstream(service, port, namespace or None))
            ports.add(port)
            continue
        raise problems.invalid([problems.ErrorItem(path="upstreams", message=problem)])
    return tuple(found)


async def _owned_instance(state: AppState, who: JoinTokenDep, instance_id: UUID) -> None:
    """404 unless registered; 403 unless the caller's token is for its service."""
    row = await state.store.read(repository.find_instance, str(instance_id))
    if row is None:
        raise problems.not_found(f"instance {instance_id}")
    if not who.may_manage(row.namespace, row.service):
        raise problems.forbidden(
            f"this join token is for {who.namespace}/{who.service}, "
            f"not {row.namespace}/{row.service}"
        )


@router.get(
    "/{instance_id}/config",
    responses={
        200: {
            "description": "The snapshot (proxy config JSON)",
            "content": {"application/json": {}},
        },
        304: {"description": "Unchanged for the whole wait"},
    },
)
async def get_config(
    instance_id: ProxyPath,
    state: StateDep,
    who: JoinTokenDep,
    wait: str = Query(default="0", max_length=16, description='Longest wait: "30s", 30, ...'),
    version: int | None = Query(
        default=None,
        ge=0,
        le=2**63 - 1,
        description="Without If-None-Match: wait for a snapshot version above this.",
    ),
    outbound_port: int = Query(
        default=15001, ge=0, le=65535, description="Port of the sidecar's outbound listener."
    ),
    upstreams: str = Query(
        default="",
        max_length=4096,
        description="Local TCP ports for services: payment-db:5433,ledger.billing:6000.",
    ),
    if_none_match: str | None = Header(default=None, max_length=80),
    accept_encoding: str | None = Header(default=None, max_length=200),
) -> Response:
    """The proxy's snapshot, once it differs from the one named by ``If-None-Match``."""
    await _owned_instance(state, who, instance_id)
    etag = if_none_match.strip().strip('"') if if_none_match else None
    try:
        built = await state.distributor.wait_for_change(
            str(instance_id),
            etag,
            _wait_seconds(wait),
            outbound_port,
            newer_than=version,
            upstreams=_upstreams(upstreams, outbound_port),
        )
    except snapshot.UnknownInstanceError:
        raise problems.not_found(f"instance {instance_id}") from None
    if built is None:
        unchanged = {"ETag": f'"{etag}"'} if etag else {}
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=unchanged)
    headers = {
        "ETag": f'"{built.etag}"',
        "X-Meshpy-Version": str(built.version),
        "Vary": "Accept-Encoding",
    }
    body = built.body
    if accept_encoding and "gzip" in accept_encoding and len(body) > _GZIP_FROM:
        # Snapshots are repetitive JSON: gzip makes them ~10x smaller. zlib releases the
        # GIL, so compressing on a thread leaves the event loop to other requests.
        body = await asyncio.to_thread(gzip.compress, body, 1)
        headers["Content-Encoding"] = "gzip"
    return Response(content=body, media_type="application/json", headers=headers)


@router.put("/{instance_id}/ack", status_code=status.HTTP_204_NO_CONTENT)
async def put_ack(instance_id: ProxyPath, body: Ack, state: StateDep, who: JoinTokenDep) -> None:
    """Record the snapshot the proxy applied, or the error it rejected it with."""
    await _owned_instance(state, who, instance_id)
    recorded = await state.store.write(
        repository.record_ack,
        str(instance_id),
        body.version,
        now=repository.utcnow(),
        etag=body.etag,
        error=body.error,
    )
    if not recorded:
        raise problems.not_found(f"instance {instance_id}")


@router.get("")
async def list_proxies(
    state: StateDep,
    _: AdminDep,
    outbound_port: int = Query(default=15001, ge=0, le=65535),
) -> list[ProxyStatus]:
    """Every registered proxy with its config sync status."""
    mesh = await state.distributor.mesh()
    acks, leases, certificates = await state.store.read(_records)
    out = []
    for inst in sorted(mesh.instances, key=lambda i: (i.namespace, i.service, i.id)):
        current = state.distributor.build(mesh, inst.id, outbound_port)
        ack = acks.get(inst.id)
        sync: SyncStatus
        if ack is None:
            sync = "NOT SENT"
        elif ack.etag == current.etag and ack.error is None:
            sync = "SYNCED"
        else:
            sync = "STALE"
        out.append(
            ProxyStatus(
                instance=inst.id,
                namespace=inst.namespace,
                service=inst.service,
                status=sync,
                acked_version=ack.version if ack else None,
                current_version=current.version,
                error=ack.error if ack else None,
                state=inst.state,
                lease_expires_at=leases.get(inst.id),
                certificate=_certificate(certificates.get(inst.id)),
            )
        )
    return out


def _records(
    session: Session,
) -> tuple[dict[str, ConfigAck], dict[str, datetime], dict[str, repository.CertificateValidity]]:
    """Acks, lease ends and newest certificates by instance id, in one transaction."""
    return (
        repository.list_acks(session),
        repository.lease_expiries(session),
        repository.latest_certificates(session),
    )


def _certificate(found: repository.CertificateValidity | None) -> ProxyCertificate | None:
    if found is None:
        return None
    return ProxyCertificate(
        serial=found.serial, not_before=found.not_before, not_after=found.not_after
    )
