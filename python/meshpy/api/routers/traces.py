"""``/api/v1/traces``: search the trace store, and read one trace whole (admin token)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from meshpy.api import problems
from meshpy.api.deps import AdminDep, StoreDep
from meshpy.durations import DURATION_PATTERN, parse_duration
from meshpy.registry import repository

__all__ = ["TraceDetail", "TraceList", "TraceSummaryPublic", "router"]

router = APIRouter(prefix="/api/v1/traces", tags=["tracing"])

_NO_NUL = r"^[^\x00]*$"
"""No NUL character: no stored name has one (the receiver replaces them), and PostgreSQL
refuses them in a query."""
_MAX_NANOS = 2**62
"""Longer durations are taken as this: any comparison with a stored time then holds."""
MAX_TRACE_SPANS = 10_000
"""The most spans one trace answer holds; the rest are left out (``truncated``)."""

TraceIdPath = Annotated[
    str,
    Path(
        pattern=r"^[0-9a-fA-F]{32}$",
        description="32 hex digits.",
        examples=["5b8efff798038103d269b633813fc60c"],
    ),
]


def _nanos(duration: str, name: str) -> int:
    """A duration in nanoseconds, at most a BIGINT's range (what the store compares with)."""
    try:
        return min(_MAX_NANOS, int(parse_duration(duration).total_seconds() * 1e9))
    except OverflowError:  # more days than a timedelta holds
        return _MAX_NANOS
    except ValueError as exc:
        raise problems.invalid([problems.ErrorItem(path=name, message=str(exc))]) from None


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


class TraceSummaryPublic(BaseModel):
    """One trace in a list: its root span, extent and size."""

    trace_id: str
    root_service: str = Field(description="The service of the root span.")
    root_operation: str = Field(description="The name of the root span.")
    start_time: datetime
    start_time_unix_nano: int
    duration_ns: int = Field(description="From the first span's start to the last one's end.")
    span_count: int
    error: bool = Field(description="Whether a span of the trace has status error.")
    services: list[str] = Field(description="Every service with a span in the trace, sorted.")


class TraceList(BaseModel):
    """Traces, newest (or slowest) first."""

    items: list[TraceSummaryPublic]


class SpanPublic(BaseModel):
    """One span with its attributes."""

    model_config = ConfigDict(from_attributes=True)

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str = Field(description="The operation.")
    kind: str = Field(description="unspecified, internal, server, client, producer or consumer.")
    service: str = Field(validation_alias="service_name")
    start_time_unix_nano: int = Field(validation_alias="start_ns")
    end_time_unix_nano: int = Field(validation_alias="end_ns")
    duration_ns: int
    status_code: Literal["unset", "ok", "error"]
    status_message: str | None
    http_status_code: int | None
    attributes: dict[str, Any]
    resource_attributes: dict[str, Any]
    received_at: datetime


class TraceDetail(BaseModel):
    """A whole trace: its spans in start order."""

    trace_id: str
    start_time: datetime
    start_time_unix_nano: int
    duration_ns: int
    span_count: int
    error: bool
    services: list[str]
    truncated: bool = Field(
        description=f"More than {MAX_TRACE_SPANS} spans: the rest are left out."
    )
    spans: list[SpanPublic]


@router.get("")
async def list_traces(
    store: StoreDep,
    _: AdminDep,
    service: Annotated[
        str | None, Query(max_length=255, pattern=_NO_NUL, description="A span of this service.")
    ] = None,
    operation: Annotated[
        str | None, Query(max_length=512, pattern=_NO_NUL, description="A span of this name.")
    ] = None,
    min_duration: Annotated[
        str | None,
        Query(pattern=DURATION_PATTERN, description="A span that took this long at least."),
    ] = None,
    status: Annotated[
        Literal["error"] | None, Query(description="A span with status error.")
    ] = None,
    since: Annotated[
        str | None,
        Query(pattern=DURATION_PATTERN, description="A span that started this long ago at most."),
    ] = None,
    order: Annotated[
        Literal["newest", "slowest"], Query(description="Newest or longest traces first.")
    ] = "newest",
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> TraceList:
    """Traces with a span that meets every condition given (the span's service, name,
    duration, status and start), newest first: trace summaries."""
    since_ns = None if since is None else time.time_ns() - _nanos(since, "since")
    min_duration_ns = None if min_duration is None else _nanos(min_duration, "min_duration")
    found = await store.read(
        repository.find_traces,
        service=service,
        operation=operation,
        min_duration_ns=min_duration_ns,
        errors_only=status == "error",
        since_ns=since_ns,
        order=order,
        limit=limit,
    )
    return TraceList(
        items=[
            TraceSummaryPublic(
                trace_id=t.trace_id,
                root_service=t.root_service,
                root_operation=t.root_operation,
                start_time=_time(t.start_ns),
                start_time_unix_nano=t.start_ns,
                duration_ns=t.duration_ns,
                span_count=t.span_count,
                error=t.error,
                services=t.services,
            )
            for t in found
        ]
    )


@router.get("/{trace_id}")
async def get_trace(trace_id: TraceIdPath, store: StoreDep, _: AdminDep) -> TraceDetail:
    """One trace: every span with its attributes, in start order."""
    trace_id = trace_id.lower()
    rows = await store.read(repository.get_trace, trace_id, limit=MAX_TRACE_SPANS + 1)
    if not rows:
        raise problems.not_found(f"trace {trace_id}")
    spans = [SpanPublic.model_validate(row) for row in rows[:MAX_TRACE_SPANS]]
    start = min(s.start_time_unix_nano for s in spans)
    end = max(s.end_time_unix_nano for s in spans)
    return TraceDetail(
        trace_id=trace_id,
        start_time=_time(start),
        start_time_unix_nano=start,
        duration_ns=end - start,
        span_count=len(spans),
        error=any(s.status_code == "error" for s in spans),
        services=sorted({s.service for s in spans}),
        truncated=len(rows) > MAX_TRACE_SPANS,
        spans=spans,
    )
