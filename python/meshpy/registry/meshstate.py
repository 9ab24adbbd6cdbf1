"""Reads the whole registry in one transaction into the ``MeshState`` snapshots are built from."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from meshpy import resources
from meshpy.registry import repository
from meshpy.registry.models import Instance, Resource, Service
from meshpy.snapshot import InstanceInfo, MeshState, ServiceInfo

__all__ = ["load_mesh_state"]

_KINDS = {"HTTPRoute": "routes", "BackendPolicy": "backend_policies"}
_KINDS["AuthorizationPolicy"] = "authorization_policies"
_KINDS["TracingPolicy"] = "tracing_policies"


def load_mesh_state(session: Session) -> MeshState:
    """Services, instances and resources (oldest first) at the current revision.

    Plain column selects rather than ORM objects: this runs for every revision the
    control plane serves, over every instance of the mesh.
    """
    revision = repository.current_revision(session)
    services = tuple(
        ServiceInfo(namespace=ns, name=name, protocol=_protocol(protocol), ports=tuple(ports or ()))
        for ns, name, protocol, ports in session.execute(
            select(Service.namespace, Service.name, Service.protocol, Service.ports)
        )
    )
    instances = tuple(
        InstanceInfo(
            id=row.id,
            namespace=row.namespace,
            service=row.service,
            version=row.version,
            labels=row.labels or {},
            address=row.address,
            inbound_port=row.inbound_port,
            app_port=row.app_port,
            zone=row.zone,
            state=row.state,
        )
        for row in session.execute(
            select(
                Instance.id,
                Instance.namespace,
                Instance.service,
                Instance.version,
                Instance.labels,
                Instance.address,
                Instance.inbound_port,
                Instance.app_port,
                Instance.zone,
                Instance.state,
            )
        )
    )
    by_kind: dict[str, list[resources.Resource]] = {name: [] for name in _KINDS.values()}
    rows = session.scalars(select(Resource).order_by(Resource.created_at, Resource.name))
    for row in rows:
        field = _KINDS.get(row.kind)
        if field is None:
            continue
        try:
            by_kind[field].append(resources.parse(repository.resource_document(row, status=False)))
        except resources.ResourceError:
            continue  # stored before a stricter release: it cannot be served, skip it
    return MeshState(
        services=services,
        instances=instances,
        routes=tuple(by_kind["routes"]),
        backend_policies=tuple(by_kind["backend_policies"]),
        authorization_policies=tuple(by_kind["authorization_policies"]),
        tracing_policies=tuple(by_kind["tracing_policies"]),
        revision=revision,
    )


def _protocol(value: Any) -> Any:
    return value if value in ("http", "grpc", "tcp") else "http"
