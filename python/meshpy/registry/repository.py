"""Every query of the registry. Each function takes a Session inside a transaction the caller
opened (``Database.transaction``) and commits; nothing here commits or knows HTTP.

Concurrency: a function that changes what the mesh config is made of first calls
``lock_changes`` (PostgreSQL: a row lock on the revision row; SQLite: its write lock
already serialises writers), then changes rows, then ``bump_revision``, which also sends
the PostgreSQL notification in the same transaction. Changes are therefore applied one
at a time and their revisions are in commit order. A lease renewal that flips no state
changes no config and takes no global lock.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from meshpy import resources
from meshpy.errors import MeshpyError
from meshpy.registry import leases
from meshpy.registry.models import (
    ConfigAck,
    Instance,
    InstanceStats,
    IssuedCertificate,
    JoinToken,
    Resource,
    Revision,
    Service,
)

__all__ = [
    "CHANGES_CHANNEL",
    "JOIN_TOKEN_PREFIX",
    "Applied",
    "Expired",
    "InboundReport",
    "NewCertificate",
    "NewInstance",
    "RegistryStats",
    "ServiceInUseError",
    "ServiceView",
    "bump_revision",
    "committed_revision",
    "create_join_token",
    "current_revision",
    "delete_join_token",
    "delete_resource",
    "delete_service",
    "deregister_instance",
    "drain_instance",
    "expire_leases",
    "find_instance",
    "get_instance",
    "get_resource",
    "get_service",
    "list_acks",
    "list_certificates",
    "list_join_tokens",
    "list_resources",
    "list_services",
    "lock_changes",
    "prune_certificates",
    "put_resource",
    "record_ack",
    "record_certificate",
    "refresh_statuses",
    "register_instance",
    "registry_stats",
    "renew_lease",
    "resource_document",
    "service_keys",
    "service_stats",
    "utcnow",
    "verify_join_token",
]

CHANGES_CHANNEL = "meshpy_changes"
"""PostgreSQL NOTIFY channel; the payload is the new revision."""

JOIN_TOKEN_PREFIX = "mpj_"
"""Join tokens read ``mpj_<id>.<secret>``."""

_REVISION_ID = 1
_LOCKED = "meshpy.changes_locked"
_BUMPED = "meshpy.revision"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, as the registry stores it."""
    return datetime.now(UTC)


# --- revision ----------------------------------------------------------------------------


def current_revision(session: Session) -> int:
    """The global revision: it grows with every committed change."""
    return session.execute(select(Revision.value).where(Revision.id == _REVISION_ID)).scalar_one()


def lock_changes(session: Session) -> None:
    """Serialise this transaction with every other change (idempotent within a transaction)."""
    transaction = session.get_transaction()
    if session.info.get(_LOCKED) is transaction:
        return
    if _dialect(session) == "postgresql":
        session.execute(select(Revision.value).where(Revision.id == _REVISION_ID).with_for_update())
    session.info[_LOCKED] = transaction


def bump_revision(session: Session) -> int:
    """Count a change: increment the revision once per transaction and return it.

    On PostgreSQL this also NOTIFYs ``meshpy_changes``, delivered when the transaction
    commits, so other servers on the same database learn of it.
    """
    transaction = session.get_transaction()
    bumped = session.info.get(_BUMPED)
    if bumped is not None and bumped[0] is transaction:
        return int(bumped[1])
    lock_changes(session)
    value = session.execute(
        update(Revision)
        .where(Revision.id == _REVISION_ID)
        .values(value=Revision.value + 1)
        .returning(Revision.value)
    ).scalar_one()
    if _dialect(session) == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANGES_CHANNEL, "payload": str(value)},
        )
    session.info[_BUMPED] = (transaction, value)
    return int(value)


def committed_revision(session: Session) -> int | None:
    """The revision this session's transaction bumped to, if it changed anything."""
    bumped = session.info.get(_BUMPED)
    return None if bumped is None else int(bumped[1])


# --- join tokens ---------------------------------------------------------------------------


def create_join_token(
    session: Session, *, namespace: str, service: str, ttl: timedelta, now: datetime
) -> tuple[JoinToken, str]:
    """Create a join token; return its row and the token text (shown once, never stored)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = JoinToken(
        id=token_id,
        secret_hash=_hash_secret(secret),
        namespace=namespace,
        service=service,
        expires_at=now + ttl,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, f"{JOIN_TOKEN_PREFIX}{token_id}.{secret}"


def verify_join_token(session: Session, token: str, *, now: datetime) -> JoinToken | None:
    """The unexpired join token that ``token`` is the text of, or None."""
    body = token.removeprefix(JOIN_TOKEN_PREFIX)
    token_id, sep, secret = body.partition(".")
    if body == token or not sep or not token_id or not secret or len(token_id) > 32:
        return None
    row = session.get(JoinToken, token_id)
    if row is None or not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
        return None
    return row if row.expires_at > now else None


def list_join_tokens(session: Session, namespace: str | None = None) -> list[JoinToken]:
    """Join tokens (without secrets), newest first."""
    query = select(JoinToken).order_by(JoinToken.created_at.desc(), JoinToken.id)
    if namespace is not None:
        query = query.where(JoinToken.namespace == namespace)
    return list(session.scalars(query))


def delete_join_token(session: Session, token_id: str) -> bool:
    """Revoke a join token; False if there is none with this id."""
    return _affected(session.execute(delete(JoinToken).where(JoinToken.id == token_id)))


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- instances -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewInstance:
    """What a sidecar tells about itself when it registers."""

    address: str
    inbound_port: int
    version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    app_port: int | None = None
    zone: str | None = None
    protocol: str | None = None
    """``http``, ``grpc`` or ``tcp``: sets the protocol of a service that has no instances yet."""


class ProtocolConflictError(MeshpyError):
    """An instance says its service speaks another protocol than its running instances."""


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


# --- services ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceView:
    """A service as clients see it: a registered service, or a version service.

    The version service ``payment-v2`` is made of the instances of ``payment`` that
    registered with version ``v2`` (``version_of`` = "payment", ``version`` = "v2").
    """

    namespace: str
    name: str
    protocol: str
    ports: list[Any]
    created_at: datetime
    version_of: str | None = None
    version: str | None = None
    states: Mapping[str, int] = field(default_factory=dict)
    """Number of endpoints per state."""
    endpoints: list[Instance] | None = None
    """The instances, when asked for one service."""


def _set_protocol(session: Session, namespace: str, service: str, protocol: str) -> None:
    row = session.get(Service, (namespace, service))
    if row is None or row.protocol == protocol:
        return
    running = session.execute(
        select(Instance.id).where(Instance.namespace == namespace, Instance.service == service)
    ).first()
    if running is not None:
        msg = f"service {namespace}/{service} speaks {row.protocol}, not {protocol}"
        raise ProtocolConflictError(msg)
    row.protocol = protocol


class ServiceInUseError(MeshpyError):
    """The service still has instances."""


def list_services(session: Session, namespace: str | None = None) -> list[ServiceView]:
    """Registered and version services, with endpoint counts, sorted by namespace and name."""
    base = select(Service)
    counts = select(
        Instance.namespace, Instance.service, Instance.version, Instance.state, func.count()
    ).group_by(Instance.namespace, Instance.service, Instance.version, Instance.state)
    first = select(
        Instance.namespace, Instance.service, Instance.version, func.min(Instance.registered_at)
    ).where(Instance.version.is_not(None))
    first = first.group_by(Instance.namespace, Instance.service, Instance.version)
    if namespace is not None:
        base = base.where(Service.namespace == namespace)
        counts = counts.where(Instance.namespace == namespace)
        first = first.where(Instance.namespace == namespace)
    services = {(s.namespace, s.name): s for s in session.scalars(base)}
    per_service: dict[tuple[str, str], Counter[str]] = {}
    per_version: dict[tuple[str, str, str], Counter[str]] = {}
    for ns, svc, version, state, count in session.execute(counts):
        per_service.setdefault((ns, svc), Counter())[state] += count
        if version is not None:
            per_version.setdefault((ns, svc, version), Counter())[state] += count
    views = [
        ServiceView(
            s.namespace,
            s.name,
            s.protocol,
            s.ports,
            s.created_at,
            states=dict(per_service.get(key, {})),
        )
        for key, s in services.items()
    ]
    for ns, svc, version, created in session.execute(first):
        if version is None:  # pragma: no cover - excluded by the query
            continue
        parent = services.get((ns, svc))
        views.append(
            ServiceView(
                ns,
                f"{svc}-{version}",
                parent.protocol if parent else "http",
                parent.ports if parent else [],
                created,
                version_of=svc,
                version=version,
                states=dict(per_version.get((ns, svc, version), {})),
            )
        )
    return sorted(views, key=lambda v: (v.namespace, v.name, v.version_of or ""))


def get_service(session: Session, namespace: str, name: str) -> ServiceView | None:
    """One service with its endpoints: a registered service, a version service, or None.

    When a registered service is named like a version service (``payment-v2`` both
    registered and a version of ``payment``), its endpoints are the union of both.
    """
    splits = [(name[:i], name[i + 1 :]) for i, c in enumerate(name) if c == "-" and i > 0]
    version_match = [and_(Instance.service == s, Instance.version == v) for s, v in splits if v]
    query = (
        select(Instance)
        .where(Instance.namespace == namespace, or_(Instance.service == name, *version_match))
        .order_by(Instance.registered_at, Instance.id)
    )
    instances = list(session.scalars(query))
    service = session.get(Service, (namespace, name))
    versions = [i for i in instances if i.service != name]
    if service is None and not versions:
        return None
    states = Counter(i.state for i in instances)
    if service is not None:
        return ServiceView(
            namespace,
            name,
            service.protocol,
            service.ports,
            service.created_at,
            states=dict(states),
            endpoints=instances,
        )
    parent_name, version = versions[0].service, versions[0].version
    parent = session.get(Service, (namespace, parent_name))
    return ServiceView(
        namespace,
        name,
        parent.protocol if parent else "http",
        parent.ports if parent else [],
        min(i.registered_at for i in versions),
        version_of=parent_name,
        version=version,
        states=dict(states),
        endpoints=instances,
    )


def service_stats(
    session: Session, namespace: str, service: str, version: str | None = None
) -> list[tuple[Instance, InstanceStats | None]] | None:
    """Every registered instance of ``service`` (of one ``version``, if given) with its
    latest inbound report (None before the first); None if the service is unknown."""
    if session.get(Service, (namespace, service)) is None:
        return None
    query = (
        select(Instance, InstanceStats)
        .outerjoin(InstanceStats, InstanceStats.instance_id == Instance.id)
        .where(Instance.namespace == namespace, Instance.service == service)
        .order_by(Instance.registered_at, Instance.id)
    )
    if version is not None:
        query = query.where(Instance.version == version)
    return [(instance, stats) for instance, stats in session.execute(query)]


def service_keys(session: Session) -> set[tuple[str, str]]:
    """Every (namespace, name) a backendRef may name: registered and version services."""
    names = session.execute(select(Service.namespace, Service.name))
    keys: set[tuple[str, str]] = {(ns, name) for ns, name in names}
    versions = select(Instance.namespace, Instance.service, Instance.version).where(
        Instance.version.is_not(None)
    )
    for ns, svc, version in session.execute(versions.distinct()):
        keys.add((ns, f"{svc}-{version}"))
    return keys


def delete_service(session: Session, namespace: str, name: str, *, now: datetime) -> bool:
    """Delete a registered service without instances; False if absent, ServiceInUseError if used."""
    lock_changes(session)
    if session.get(Service, (namespace, name)) is None:
        return False
    in_use = select(Instance.id).where(Instance.namespace == namespace, Instance.service == name)
    if session.execute(in_use.limit(1)).first() is not None:
        raise ServiceInUseError(f"{namespace}/{name}")
    session.execute(delete(Service).where(Service.namespace == namespace, Service.name == name))
    refresh_statuses(session, now=now)
    bump_revision(session)
    return True


# --- resources -----------------------------------------------------------------------------

Outcome = Literal["created", "configured", "unchanged"]


@dataclass(frozen=True)
class Applied:
    """The stored resource after a write and what the write did."""

    row: Resource
    outcome: Outcome


def put_resource(
    session: Session, res: resources.Resource, namespace: str, *, now: datetime
) -> Applied:
    """Create or update a resource in ``namespace``, with its status.

    ``generation`` grows when the spec changes (not for labels or annotations). The
    caller has checked that ``res.namespace`` is None or ``namespace``.
    """
    lock_changes(session)
    kind, name = res.kind, res.name
    spec, labels, annotations = res.spec_dict(), dict(res.labels), dict(res.annotations)
    row = _resource(session, kind, namespace, name, lock=True)
    outcome: Outcome
    if row is None:
        values = {
            "kind": kind,
            "namespace": namespace,
            "name": name,
            "generation": 1,
            "labels": labels,
            "annotations": annotations,
            "spec": spec,
            "status": {},
            "updated_at": now,
        }
        _insert_ignore(session, Resource, values, now=now)
        row = _resource(session, kind, namespace, name, lock=True)
        if row is None:  # pragma: no cover - inserted just above, under the change lock
            msg = f"{kind} {namespace}/{name} vanished after its insert"
            raise RuntimeError(msg)
        outcome = "created"
    elif (row.spec, row.labels, row.annotations) != (spec, labels, annotations):
        if row.spec != spec:
            row.generation += 1
        row.spec, row.labels, row.annotations = spec, labels, annotations
        row.updated_at = now
        outcome = "configured"
    else:
        outcome = "unchanged"
    status_changed = _refresh_status(row, res, service_keys(session), now=now)
    session.flush()
    if outcome != "unchanged" or status_changed:
        bump_revision(session)
    return Applied(row=row, outcome=outcome)


def get_resource(session: Session, kind: str, namespace: str, name: str) -> Resource | None:
    """One resource, or None."""
    return _resource(session, kind, namespace, name, lock=False)


def list_resources(session: Session, kind: str, namespace: str | None = None) -> list[Resource]:
    """Resources of one kind, in one namespace or all, sorted by namespace and name."""
    query = select(Resource).where(Resource.kind == kind)
    if namespace is not None:
        query = query.where(Resource.namespace == namespace)
    return list(session.scalars(query.order_by(Resource.namespace, Resource.name)))


def delete_resource(session: Session, kind: str, namespace: str, name: str) -> bool:
    """Delete a resource; False if there is none."""
    lock_changes(session)
    result = session.execute(
        delete(Resource).where(
            Resource.kind == kind, Resource.namespace == namespace, Resource.name == name
        )
    )
    if not _affected(result):
        return False
    bump_revision(session)
    return True


def refresh_statuses(session: Session, *, now: datetime) -> int:
    """Recompute the status of every resource against the services as they are now.

    Called when a service appears or disappears; returns how many statuses changed.
    """
    lock_changes(session)
    keys = service_keys(session)
    changed = 0
    for row in session.scalars(select(Resource).order_by(Resource.id)):
        res = resources.parse(resource_document(row, status=False))
        changed += _refresh_status(row, res, keys, now=now)
    if changed:
        session.flush()
        bump_revision(session)
    return changed


def resource_document(row: Resource, *, status: bool = True) -> dict[str, Any]:
    """The stored resource as a document: what GET answers and ``resources.parse`` reads."""
    info = resources.kind_info(row.kind)
    metadata: dict[str, Any] = {"name": row.name, "namespace": row.namespace}
    if row.labels:
        metadata["labels"] = row.labels
    if row.annotations:
        metadata["annotations"] = row.annotations
    document: dict[str, Any] = {
        "apiVersion": info.api_version if info else "",
        "kind": row.kind,
        "metadata": metadata,
        "spec": row.spec,
    }
    if status:
        metadata["generation"] = row.generation
        metadata["creationTimestamp"] = _rfc3339(row.created_at)
        document["status"] = row.status
    return document


def _refresh_status(
    row: Resource, res: resources.Resource, keys: set[tuple[str, str]], *, now: datetime
) -> bool:
    status = resources.compute_status(res, keys, row.generation, now=now, previous=row.status)
    if status == row.status:
        return False
    row.status = status
    row.updated_at = now
    return True


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _resource(
    session: Session, kind: str, namespace: str, name: str, *, lock: bool
) -> Resource | None:
    query = select(Resource).where(
        Resource.kind == kind, Resource.namespace == namespace, Resource.name == name
    )
    if lock:
        query = query.with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).first()


# --- issued certificates -------------------------------------------------------------------


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


def prune_certificates(session: Session, *, expired_before: datetime) -> int:
    """Forget certificates that expired before ``expired_before``; return how many."""
    result: Any = session.execute(
        delete(IssuedCertificate).where(IssuedCertificate.not_after < expired_before)
    )
    return int(result.rowcount)


# --- stats ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryStats:
    """Counts for the /metrics gauges."""

    revision: int
    services: int
    instances: Mapping[str, int]
    resources: Mapping[str, int]


def registry_stats(session: Session) -> RegistryStats:
    """Count services, instances by state and resources by kind."""
    by_state = select(Instance.state, func.count()).group_by(Instance.state)
    by_kind = select(Resource.kind, func.count()).group_by(Resource.kind)
    return RegistryStats(
        revision=current_revision(session),
        services=session.execute(select(func.count()).select_from(Service)).scalar_one(),
        instances=dict(session.execute(by_state).all()),
        resources=dict(session.execute(by_kind).all()),
    )


# --- internals -------------------------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _affected(result: Any) -> bool:
    return bool(result.rowcount)


def _insert_ignore(
    session: Session,
    model: type[Service] | type[Resource],
    values: dict[str, Any],
    *,
    now: datetime,
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if the row was inserted."""
    insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    statement = insert(model).values(created_at=now, **values).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg reports -1 ("unknown") for this statement.
    return session.execute(statement.returning(model.created_at)).first() is not None
