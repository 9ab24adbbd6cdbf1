"""``/healthz`` (the process answers), ``/readyz`` (the database answers) and ``/metrics``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from meshpy.api.deps import StateDep
from meshpy.api.store import UnavailableError
from meshpy.registry import repository

__all__ = ["router"]

router = APIRouter(tags=["health"])


class Status(BaseModel):
    """The answer of /healthz and /readyz."""

    status: Literal["ok", "ready"]
    revision: int | None = None


@router.get("/healthz")
async def healthz() -> Status:
    """The server process is up (says nothing about the database)."""
    return Status(status="ok")


@router.get("/readyz")
async def readyz(state: StateDep) -> Status:
    """The database answers; 503 otherwise."""
    revision = await state.store.read(repository.current_revision)
    return Status(status="ready", revision=revision)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(state: StateDep) -> Response:
    """Prometheus metrics: API requests by route and status, registry and config gauges."""
    try:
        stats = await state.store.read(repository.registry_stats)
    except UnavailableError:
        stats = None
    state.metrics.observe(stats)
    state.metrics.observe_distribution(
        watchers=state.distributor.watchers, load_s=state.distributor.last_load_s
    )
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
