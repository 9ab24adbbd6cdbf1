"""Counts of what the registry holds, for the server's metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from meshpy.registry.models import (
    Instance,
    Resource,
    Service,
)
from meshpy.registry.repository._shared import current_revision


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
