"""Instances: registration, leases, draining, expiry, and their sidecars' config acks."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from meshpy.registry import leases
from meshpy.registry.models import (
    ConfigAck,
    Instance,
    InstanceStats,
    Service,
)
from meshpy.registry.repository._shared import (
    _affected,
    _dialect,
    _insert_ignore,
    bump_revision,
    lock_changes,
)
from meshpy.registry.repository.resources import refresh_statuses
from meshpy.registry.repository.services import _set_protocol


@dataclass(frozen=True)
class NewInstance:
    """What a sidecar tells about itself when it registers."""

    address: str
    inbound_port: int
    version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    app_port: int | None = None
    admin_address: str | None = None
    """The sidecar's admin listener, ``IP:PORT``."""
    zone: str | None = None
    protocol: str | None = None
    """``http``, ``grpc`` or ``tcp``: sets the protocol of a service that has no instances yet."""


def register_instance(
    session: Session,
    namespace: str,
    service: str,
    new: NewInstance,
    *,
    now: datetime,
    policy: leases.LeasePolicy,
) -> Instance:
    """Add an instance (state ``starting``) and its service if absent.

    Raises ProtocolConflictError when ``new.protocol`` differs from the protocol of a
    service that has instances (a service without any takes the new one).
    """
    lock_changes(session)
    created = _insert_ignore(
        session,
        Service,
        {"namespace": namespace, "name": service, "protocol": new.protocol or "http", "ports": []},
        now=now,
    )
    if not created and new.protocol is not None:
        _set_protocol(session, namespace, service, new.protocol)
    new_version_service = new.version is not None and not _has_version(
        session, namespace, service, new.version
    )
    lease = leases.register(now, policy)
    row = Instance(
        id=str(uuid.uuid4()),
        namespace=namespace,
        service=service,
        version=new.version,
        labels=dict(new.labels),
        address=new.address,
        inbound_port=new.inbound_port,
        app_port=new.app_port,
        admin_address=new.admin_address,
        zone=new.zone,
        registered_at=now,
        updated_at=now,
    )
    _set_lease(row, lease)
    session.add(row)
    session.flush()
    if created or new_version_service:
        refresh_statuses(session, now=now)
    bump_revision(session)
    return row


def find_instance(session: Session, instance_id: str) -> Instance | None:
    """The instance with this id, whatever its service."""
    return session.get(Instance, instance_id)


def get_instance(
    session: Session, namespace: str, service: str, instance_id: str
) -> Instance | None:
    """The instance with this id, if it belongs to ``namespace``/``service``."""
    row = session.get(Instance, instance_id)
    if row is None or row.namespace != namespace or row.service != service:
        return None
    return row


def list_scrape_targets(session: Session, namespace: str | None = None) -> list[Instance]:
    """Instances that registered an admin address (in ``namespace``, if given), sorted by
    namespace, service, version and id."""
    query = select(Instance).where(Instance.admin_address.is_not(None))
    if namespace is not None:
        query = query.where(Instance.namespace == namespace)
    order = (Instance.namespace, Instance.service, Instance.version, Instance.id)
    return list(session.scalars(query.order_by(*order)))


@dataclass(frozen=True)
class InboundReport:
    """A sidecar's cumulative inbound counters, sent with a lease renewal."""

    started_at: datetime
    requests: Mapping[str, int]
    duration_buckets: Mapping[str, int]


def renew_lease(
    session: Session,
    namespace: str,
    service: str,
    instance_id: str,
    health: leases.Health,
    *,
    now: datetime,
    policy: leases.LeasePolicy,
    stats: InboundReport | None = None,
) -> Instance | None:
    """Renew an instance's lease with a health report (and its inbound counters, kept as
    its latest report); None if it is not registered."""
    row = get_instance(session, namespace, service, instance_id)
    if row is None:
        return None
    if stats is not None:
        _record_stats(session, instance_id, stats, now=now)
    lease = leases.report(_lease_of(row), health, now, policy)
    if lease.state == row.state:
        # Only the expiry and the counters change: no config change, no global lock. The
        # WHERE makes it a compare-and-set against a concurrent state change.
        result = session.execute(
            update(Instance)
            .where(
                Instance.id == instance_id,
                Instance.state == row.state,
                Instance.passing_reports == row.passing_reports,
                Instance.failing_reports == row.failing_reports,
            )
            .values(
                passing_reports=lease.passing,
                failing_reports=lease.failing,
                lease_expires_at=lease.expires_at,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if _affected(result):
            session.expire(row)
            return session.get(Instance, instance_id)
    lock_changes(session)
    fresh = session.get(Instance, instance_id, with_for_update=True, populate_existing=True)
    if fresh is None:
        return None
    lease = leases.report(_lease_of(fresh), health, now, policy)
    changed = lease.state != fresh.state
    _set_lease(fresh, lease)
    fresh.updated_at = now
    if changed:
        bump_revision(session)
    return fresh


def _record_stats(
    session: Session, instance_id: str, stats: InboundReport, *, now: datetime
) -> None:
    """Keep ``stats`` as the instance's latest report (an upsert; no revision bump)."""
    values = {
        "started_at": stats.started_at,
        "requests": dict(stats.requests),
        "duration_buckets": dict(stats.duration_buckets),
        "reported_at": now,
    }
    insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    statement = insert(InstanceStats).values(instance_id=instance_id, **values)
    session.execute(statement.on_conflict_do_update(index_elements=["instance_id"], set_=values))


def drain_instance(
    session: Session, namespace: str, service: str, instance_id: str, *, now: datetime
) -> Instance | None:
    """Mark an instance draining (no new traffic); None if it is not registered."""
    lock_changes(session)
    row = get_instance(session, namespace, service, instance_id)
    if row is None:
        return None
    if row.state != leases.State.DRAINING:
        _set_lease(row, leases.drain(_lease_of(row)))
        row.updated_at = now
        bump_revision(session)
    return row


def deregister_instance(
    session: Session, namespace: str, service: str, instance_id: str, *, now: datetime
) -> bool:
    """Remove an instance at once; False if it is not registered."""
    lock_changes(session)
    row = get_instance(session, namespace, service, instance_id)
    if row is None:
        return False
    _remove_instances(session, [row], now=now)
    bump_revision(session)
    return True


@dataclass(frozen=True)
class Expired:
    """What one pass of the lease reaper did."""

    unhealthy: int = 0
    removed: int = 0


def expire_leases(
    session: Session,
    *,
    now: datetime,
    policy: leases.LeasePolicy,
    limit: int = 1000,
    ended_after: datetime | None = None,
) -> Expired:
    """Mark instances whose lease ended unhealthy, and remove those past the grace.

    ``ended_after``: only leases that ended after this instant count (see the reaper).
    """
    candidates = or_(
        and_(Instance.lease_expires_at <= now, Instance.state != leases.State.UNHEALTHY),
        Instance.lease_expires_at <= now - policy.removal_grace,
    )
    if ended_after is not None:
        candidates = and_(candidates, Instance.lease_expires_at > ended_after)
    # A cheap unlocked look first: most passes find nothing and take no lock.
    if session.execute(select(Instance.id).where(candidates).limit(1)).first() is None:
        return Expired()
    lock_changes(session)
    rows = session.scalars(
        select(Instance).where(candidates).order_by(Instance.id).limit(limit).with_for_update()
    ).all()
    unhealthy, removed = 0, []
    for row in rows:
        lease = leases.tick(_lease_of(row), now, policy)
        if lease is None:
            removed.append(row)
        elif lease.state != row.state:
            _set_lease(row, lease)
            row.updated_at = now
            unhealthy += 1
    if removed:
        _remove_instances(session, removed, now=now)
    if unhealthy or removed:
        bump_revision(session)
    return Expired(unhealthy=unhealthy, removed=len(removed))


def record_ack(
    session: Session,
    instance_id: str,
    version: int,
    *,
    now: datetime,
    etag: str | None = None,
    error: str | None = None,
) -> bool:
    """Record the config an instance applied (``error`` None) or rejected; False if it is
    not registered. Not a change of the registry: the revision stays."""
    if session.get(Instance, instance_id) is None:
        return False
    row = session.get(ConfigAck, instance_id)
    if row is None:
        row = ConfigAck(instance_id=instance_id, version=version, acked_at=now)
        session.add(row)
    row.version, row.etag, row.error, row.acked_at = version, etag, error, now
    session.flush()
    return True


def list_acks(session: Session) -> dict[str, ConfigAck]:
    """Every recorded ack, by instance id."""
    return {row.instance_id: row for row in session.scalars(select(ConfigAck))}


def lease_expiries(session: Session) -> dict[str, datetime]:
    """When each registered instance's lease runs out unless renewed, by instance id."""
    query = select(Instance.id, Instance.lease_expires_at)
    return {row.id: row.lease_expires_at for row in session.execute(query)}


def _remove_instances(session: Session, rows: Sequence[Instance], *, now: datetime) -> None:
    versions = {(r.namespace, r.service, r.version) for r in rows if r.version is not None}
    for row in rows:
        session.delete(row)
    session.flush()
    if any(not _has_version(session, ns, svc, ver) for ns, svc, ver in versions):
        refresh_statuses(session, now=now)


def _has_version(session: Session, namespace: str, service: str, version: str) -> bool:
    query = select(Instance.id).where(
        Instance.namespace == namespace, Instance.service == service, Instance.version == version
    )
    return session.execute(query.limit(1)).first() is not None


def _lease_of(row: Instance) -> leases.Lease:
    return leases.Lease(
        state=leases.State(row.state),
        passing=row.passing_reports,
        failing=row.failing_reports,
        expires_at=row.lease_expires_at,
    )


def _set_lease(row: Instance, lease: leases.Lease) -> None:
    row.state = lease.state.value
    row.passing_reports = lease.passing
    row.failing_reports = lease.failing
    row.lease_expires_at = lease.expires_at
