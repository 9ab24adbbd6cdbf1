"""Services: registered with their first instance, listed with instances, deleted unused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from meshpy.errors import MeshpyError
from meshpy.registry.models import (
    Instance,
    InstanceStats,
    Service,
)
from meshpy.registry.repository._shared import bump_revision, lock_changes
from meshpy.registry.repository.resources import refresh_statuses


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


class ProtocolConflictError(MeshpyError):
    """An instance says its service speaks another protocol than its running instances."""


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
