"""The trace store: spans as the OTLP receiver records them, trace queries, and retention."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from meshpy.registry.models import Span
from meshpy.registry.repository._shared import _dialect

TraceOrder = Literal["newest", "slowest"]

TRIM_BATCH = 10_000
"""Spans ``trim_spans`` deletes per call at most: short transactions."""


@dataclass(frozen=True)
class NewSpan:
    """A span to store, decoded and checked by the receiver."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: str
    status_message: str | None
    service_name: str
    http_status_code: int | None
    attributes: dict[str, Any] = field(default_factory=dict)
    resource_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TraceSummary:
    """One trace, as a list of traces shows it."""

    trace_id: str
    root_service: str
    root_operation: str
    start_ns: int
    duration_ns: int
    span_count: int
    error: bool
    services: list[str]


def record_spans(session: Session, spans: Sequence[NewSpan], *, now: datetime) -> None:
    """Store spans; one already stored (same trace and span ID) is kept as it was.

    Not a change of the mesh config: the revision stays.
    """
    insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    rows = [
        {**asdict(span), "duration_ns": span.end_ns - span.start_ns, "received_at": now}
        for span in spans
    ]
    if rows:
        # One statement, many parameter sets: SQLAlchemy batches them ("insertmanyvalues").
        session.execute(insert(Span).on_conflict_do_nothing(), rows)


def find_traces(
    session: Session,
    *,
    service: str | None = None,
    operation: str | None = None,
    min_duration_ns: int | None = None,
    errors_only: bool = False,
    since_ns: int | None = None,
    order: TraceOrder = "newest",
    limit: int = 20,
) -> list[TraceSummary]:
    """Traces with a span that meets every condition given, newest (or slowest) first.

    The conditions hold for one span together, as in Jaeger's search: ``service`` and
    ``min_duration_ns`` find traces where that service's span took that long. The
    summary describes the whole trace.
    """
    conditions = []
    if service is not None:
        conditions.append(Span.service_name == service)
    if operation is not None:
        conditions.append(Span.name == operation)
    if min_duration_ns is not None:
        conditions.append(Span.duration_ns >= min_duration_ns)
    if errors_only:
        conditions.append(Span.status_code == "error")
    if since_ns is not None:
        conditions.append(Span.start_ns >= since_ns)
    rank = func.max(Span.start_ns) if order == "newest" else func.max(Span.duration_ns)
    matching = (
        select(Span.trace_id)
        .where(*conditions)
        .group_by(Span.trace_id)
        .order_by(rank.desc(), Span.trace_id)
        .limit(limit)
    )
    trace_ids = list(session.scalars(matching))
    summaries = _summaries(session, trace_ids)
    if order == "newest":
        return sorted(summaries, key=lambda s: (-s.start_ns, s.trace_id))
    return sorted(summaries, key=lambda s: (-s.duration_ns, s.trace_id))


def _summaries(session: Session, trace_ids: list[str]) -> list[TraceSummary]:
    if not trace_ids:
        return []
    in_traces = Span.trace_id.in_(trace_ids)
    is_error = case((Span.status_code == "error", 1), else_=0)
    totals = session.execute(
        select(
            Span.trace_id,
            func.min(Span.start_ns),
            func.max(Span.end_ns),
            func.count(),
            func.max(is_error),
        )
        .where(in_traces)
        .group_by(Span.trace_id)
    ).all()
    services: dict[str, set[str]] = {}
    for trace_id, name in session.execute(
        select(Span.trace_id, Span.service_name).where(in_traces).distinct()
    ):
        services.setdefault(trace_id, set()).add(name)
    roots = {trace_id: _root(session, trace_id) for trace_id in trace_ids}
    return [
        TraceSummary(
            trace_id=trace_id,
            root_service=roots[trace_id][0],
            root_operation=roots[trace_id][1],
            start_ns=start,
            duration_ns=end - start,
            span_count=count,
            error=bool(errors),
            services=sorted(services.get(trace_id, ())),
        )
        for trace_id, start, end, count, errors in totals
    ]


def _root(session: Session, trace_id: str) -> tuple[str, str]:
    """The service and operation of the trace's root span: the earliest without a parent,
    else (its root not received yet) the earliest span."""
    query = (
        select(Span.service_name, Span.name)
        .where(Span.trace_id == trace_id)
        .order_by(Span.parent_span_id.is_not(None), Span.start_ns, Span.id)
        .limit(1)
    )
    service, name = session.execute(query).one()
    return service, name


def get_trace(session: Session, trace_id: str, *, limit: int = 10_000) -> list[Span]:
    """The spans of one trace in start order (the first ``limit``); empty if unknown."""
    query = (
        select(Span).where(Span.trace_id == trace_id).order_by(Span.start_ns, Span.id).limit(limit)
    )
    return list(session.scalars(query))


def count_spans(session: Session) -> int:
    """How many spans are stored."""
    return session.execute(select(func.count()).select_from(Span)).scalar_one()


def trim_spans(
    session: Session, *, started_before_ns: int, max_spans: int, batch: int = TRIM_BATCH
) -> int:
    """Delete up to ``batch`` spans: those started before ``started_before_ns``, then the
    oldest beyond the newest ``max_spans``. Returns how many; ``batch`` means "call again".

    Deleting in batches keeps each transaction short, under the server's DB deadline.
    """
    expired = (
        select(Span.id)
        .where(Span.start_ns < started_before_ns)
        .order_by(Span.start_ns)
        .limit(batch)
    )
    deleted = _delete(session, expired)
    if deleted >= batch or count_spans(session) <= max_spans:
        return deleted  # counting is cheap; finding the cut in a million spans is not
    # The oldest span to keep is the max_spans-th newest; everything older goes.
    oldest_kept = session.execute(
        select(Span.start_ns, Span.id)
        .order_by(Span.start_ns.desc(), Span.id.desc())
        .offset(max(max_spans, 1) - 1)
        .limit(1)
    ).first()
    if oldest_kept is None:
        return deleted
    start_ns, span_id = oldest_kept
    older = or_(Span.start_ns < start_ns, and_(Span.start_ns == start_ns, Span.id < span_id))
    excess = select(Span.id).where(older).order_by(Span.start_ns, Span.id).limit(batch - deleted)
    return deleted + _delete(session, excess)


def _delete(session: Session, ids: Any) -> int:
    result: Any = session.execute(delete(Span).where(Span.id.in_(ids)))
    return int(result.rowcount)
