"""``/api/v1/revision``: the registry's revision, and a long-poll for the next one.

Every committed change (in this server or another on the same database) moves the
revision on. ``GET /api/v1/revision?newer_than=N&wait=30`` answers as soon as the
revision is greater than N, or after ``wait`` seconds with ``changed: false``: a cheap
"tell me when anything changed" for dashboards and scripts, on the same change feed the
config distribution uses.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from meshpy.api.deps import AdminDep, StateDep
from meshpy.registry import repository

__all__ = ["MAX_WAIT_S", "router"]

router = APIRouter(prefix="/api/v1", tags=["revision"])

MAX_WAIT_S = 60.0


class RevisionPublic(BaseModel):
    """The registry revision."""

    revision: int = Field(description="Grows with every committed change.")
    changed: bool = Field(description="Whether it is greater than newer_than (true without it).")


@router.get("/revision")
async def get_revision(
    state: StateDep,
    _: AdminDep,
    newer_than: int | None = Query(
        default=None, ge=0, le=2**63 - 1, description="Wait for a revision greater than this."
    ),
    wait: float = Query(
        default=30.0, ge=0, le=MAX_WAIT_S, description="Longest wait, in seconds (max 60)."
    ),
) -> RevisionPublic:
    """The current revision; with ``newer_than``, wait (up to ``wait`` s) for a newer one."""
    if newer_than is None:
        revision = await state.store.read(repository.current_revision)
        await state.feed.changed(revision)
        return RevisionPublic(revision=revision, changed=True)
    revision = await state.feed.wait_newer(newer_than, wait)
    return RevisionPublic(revision=revision, changed=revision > newer_than)
