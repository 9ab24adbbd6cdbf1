"""The record of every certificate the mesh CA issued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session

from meshpy.registry.models import (
    Instance,
    IssuedCertificate,
)


@dataclass(frozen=True)
class NewCertificate:
    """A certificate the CA just signed, to be recorded."""

    serial: str
    identity: str
    namespace: str
    service: str
    instance_id: str | None
    token_id: str
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    chain_pem: str


def record_certificate(session: Session, new: NewCertificate) -> IssuedCertificate:
    """Record an issued certificate. Not a change of the mesh config: the revision stays."""
    row = IssuedCertificate(
        serial=new.serial,
        identity=new.identity,
        namespace=new.namespace,
        service=new.service,
        instance_id=new.instance_id,
        token_id=new.token_id,
        not_before=new.not_before,
        not_after=new.not_after,
        issued_at=new.issued_at,
        chain_pem=new.chain_pem,
    )
    session.add(row)
    session.flush()
    return row


def list_certificates(
    session: Session,
    *,
    namespace: str | None = None,
    service: str | None = None,
    instance_id: str | None = None,
    limit: int = 100,
) -> list[IssuedCertificate]:
    """Issued certificates, newest first, optionally of one namespace, service or instance."""
    query = select(IssuedCertificate)
    if namespace is not None:
        query = query.where(IssuedCertificate.namespace == namespace)
    if service is not None:
        query = query.where(IssuedCertificate.service == service)
    if instance_id is not None:
        query = query.where(IssuedCertificate.instance_id == instance_id)
    query = query.order_by(IssuedCertificate.issued_at.desc(), IssuedCertificate.serial)
    return list(session.scalars(query.limit(limit)))


@dataclass(frozen=True)
class CertificateValidity:
    """When one issued certificate is valid."""

    serial: str
    not_before: datetime
    not_after: datetime


def latest_certificates(session: Session) -> dict[str, CertificateValidity]:
    """The newest certificate issued to each registered instance, by instance id."""
    newest = (
        select(
            IssuedCertificate.instance_id,
            func.max(IssuedCertificate.issued_at).label("issued_at"),
        )
        .join(Instance, Instance.id == IssuedCertificate.instance_id)
        .group_by(IssuedCertificate.instance_id)
        .subquery()
    )
    query = select(
        IssuedCertificate.instance_id,
        IssuedCertificate.serial,
        IssuedCertificate.not_before,
        IssuedCertificate.not_after,
    ).join(
        newest,
        and_(
            IssuedCertificate.instance_id == newest.c.instance_id,
            IssuedCertificate.issued_at == newest.c.issued_at,
        ),
    )
    found: dict[str, CertificateValidity] = {}
    for row in session.execute(query):
        # Issue times are to the second: of two issued in one second, the longer-lived.
        kept = found.get(str(row.instance_id))
        if kept is None or row.not_after > kept.not_after:
            found[str(row.instance_id)] = CertificateValidity(
                row.serial, row.not_before, row.not_after
            )
    return found


def prune_certificates(session: Session, *, expired_before: datetime) -> int:
    """Forget certificates that expired before ``expired_before``; return how many."""
    result: Any = session.execute(
        delete(IssuedCertificate).where(IssuedCertificate.not_after < expired_before)
    )
    return int(result.rowcount)
