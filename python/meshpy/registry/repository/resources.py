"""Stored resources (HTTPRoute, BackendPolicy, AuthorizationPolicy) and their status conditions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from meshpy import resources
from meshpy.registry.models import (
    Resource,
)
from meshpy.registry.repository._shared import (
    _affected,
    _insert_ignore,
    bump_revision,
    lock_changes,
    service_keys,
)

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
