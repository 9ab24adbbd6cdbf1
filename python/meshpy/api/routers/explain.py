"""``POST /api/v1/explain``: what the mesh does with one request, and why (admin token).

The answer is built from the mesh state of the current revision, the same state every
sidecar's snapshot comes from (``meshpy.explain``). It changes nothing. A service the
registry does not have, or a request the proxy core cannot take, is a 422 problem naming
the field.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from meshpy.api import problems
from meshpy.api.deps import AdminDep, StateDep
from meshpy.explain import ExplainError, ExplainRequest, Explanation, explain

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/explain", tags=["explain"])


@router.post("")
async def explain_request(body: ExplainRequest, state: StateDep, _: AdminDep) -> Explanation:
    """Explain a request from one service's app to another: the route rule and why, the
    backends and their weights, the BackendPolicy in force, and the AuthorizationPolicy
    decision of the destination's sidecars with the policy and rule that made it."""
    mesh = await state.distributor.mesh()
    try:
        # The core compiles every virtual host of the namespace: off the event loop.
        return await asyncio.to_thread(explain, mesh, body)
    except ExplainError as exc:
        raise problems.invalid([problems.ErrorItem(path=exc.path, message=exc.message)]) from None
