"""``/api/v1/tap``: a live stream of a service's requests, from its sidecars' taps (admin).

The server opens ``GET /tap`` on the admin listener of every ready instance of the
service and forwards their events, merged, as Server-Sent Events (``meshpy.tap.merge``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from meshpy import tap
from meshpy.api import problems
from meshpy.api.deps import AdminDep, StateDep
from meshpy.api.schemas import DNS_LABEL
from meshpy.durations import DURATION_PATTERN, parse_duration
from meshpy.registry import repository

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["tap"])

MAX_DURATION_S = 600
"""The longest tap, as the proxies allow."""

_EVENTS = """Server-Sent Events: `start` (the instances tapped), `instance` (a sidecar's
tap is open) or `error` (it could not be opened: `instance`, `reason`), `request` (one
request: `method`, `authority`, `path`, `status`, `latency_ms`, `source_identity`,
`route`, `cluster`, `endpoint`, `direction`, `trace_id`, `instance`, and `headers` if
asked, credentials redacted, and `request_body` and `response_body` if asked: `text`,
their first 4 KiB, `bytes`, their length, and `truncated`), and a last `end` (`events`,
and those `limited` by the rate, `dropped` by a slow reader, `failed` instances)."""


@router.get(
    "/tap",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": _EVENTS}},
)
async def get_tap(
    state: StateDep,
    _: AdminDep,
    service: Annotated[str, Query(pattern=DNS_LABEL, max_length=63)],
    namespace: Annotated[str, Query(pattern=DNS_LABEL, max_length=63)] = "default",
    path: Annotated[
        str | None,
        Query(pattern=r"^/[\x21-\x7e]*$", max_length=1024, description="A path prefix."),
    ] = None,
    method: Annotated[
        str | None, Query(pattern=r"^[A-Z][A-Z-]{0,31}$", description="Only this method.")
    ] = None,
    direction: Literal["inbound", "outbound", "both"] = "both",
    max_rps: Annotated[
        int, Query(ge=1, le=tap.MAX_RPS, description="Events a second, over all instances.")
    ] = 10,
    headers: Annotated[
        bool, Query(description="Show request headers (credentials always redacted).")
    ] = False,
    bodies: Annotated[
        bool,
        Query(
            description="Show the first 4 KiB of request and response bodies (as they are: "
            "a body's credentials are not redacted)."
        ),
    ] = False,
    duration: Annotated[
        str, Query(pattern=DURATION_PATTERN, max_length=32, description="1s to 10m.")
    ] = "1m",
) -> StreamingResponse:
    """Stream the requests that the ready instances of a service serve and send, live."""
    seconds = parse_duration(duration).total_seconds()
    if not 1 <= seconds <= MAX_DURATION_S:
        raise problems.invalid(
            [problems.ErrorItem(path="duration", message=f"{duration!r} is not 1s to 10m")]
        )
    view = await state.store.read(repository.get_service, namespace, service)
    if view is None:
        raise problems.not_found(f"service {namespace}/{service}")
    targets = [
        tap.Target(instance.id, instance.admin_address)
        for instance in view.endpoints or []
        if instance.state == "healthy" and instance.admin_address
    ]
    if not targets:
        raise problems.not_found(
            f"a ready instance of {namespace}/{service} with an admin listener"
        )
    params = tap.TapParams(
        path=path,
        method=method,
        direction=None if direction == "both" else direction,
        max_rps=max_rps,
        headers=headers,
        bodies=bodies,
        duration_s=max(1, int(seconds)),
    )
    return StreamingResponse(
        tap.merge(targets, params),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
