"""The trace store against both databases: record, search, read a trace, trim."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from meshpy.registry import repository
from meshpy.registry.db import Database

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0 = 1_772_366_400_000_000_000
"""2026-03-01T12:00:00Z in unix nanoseconds."""
MS = 1_000_000


def span(
    trace: int,
    span_id: int,
    *,
    parent: int | None = None,
    service: str = "cart",
    name: str = "GET /cart",
    start_ms: int = 0,
    duration_ms: int = 10,
    status: str = "unset",
    **attributes: Any,
) -> repository.NewSpan:
    return repository.NewSpan(
        trace_id=f"{trace:032x}",
        span_id=f"{span_id:016x}",
        parent_span_id=None if parent is None else f"{parent:016x}",
        name=name,
        kind="server",
        start_ns=T0 + start_ms * MS,
        end_ns=T0 + (start_ms + duration_ms) * MS,
        status_code=status,
        status_message=None,
        service_name=service,
        http_status_code=None,
        attributes=attributes,
        resource_attributes={"service.name": service},
    )


def record(db: Database, *spans: repository.NewSpan) -> None:
    with db.transaction() as session:
        repository.record_spans(session, spans, now=NOW)


def traces(db: Database, **query: Any) -> list[str]:
    with db.transaction(write=False) as session:
        return [f"{int(t.trace_id, 16)}" for t in repository.find_traces(session, **query)]


def count(db: Database) -> int:
    with db.transaction(write=False) as session:
        return repository.count_spans(session)


@pytest.fixture
def shop(db: Database) -> Database:
    """Three traces: 1 (cart → payment, an error), 2 (cart, slow), 3 (catalog)."""
    record(
        db,
        span(1, 1, service="cart", name="POST /checkout", start_ms=0, duration_ms=120),
        span(1, 2, parent=1, service="cart", name="POST payment", start_ms=10, duration_ms=100),
        span(
            1,
            3,
            parent=2,
            service="payment",
            name="POST /charge",
            start_ms=20,
            duration_ms=80,
            status="error",
        ),
        span(2, 1, service="cart", name="GET /cart", start_ms=1000, duration_ms=900),
        span(3, 1, service="catalog", name="GET /items", start_ms=2000, duration_ms=5),
    )
    return db


def test_summaries_describe_whole_traces(shop: Database) -> None:
    with shop.transaction(write=False) as session:
        found = repository.find_traces(session)
        revision = repository.current_revision(session)
    assert revision == 0  # spans are not mesh config
    assert [int(t.trace_id, 16) for t in found] == [3, 2, 1]  # newest first
    checkout = found[2]
    assert (checkout.root_service, checkout.root_operation) == ("cart", "POST /checkout")
    assert (checkout.start_ns, checkout.duration_ns) == (T0, 120 * MS)
    assert (checkout.span_count, checkout.error, checkout.services) == (
        3,
        True,
        ["cart", "payment"],
    )
    assert not found[0].error


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["3", "2", "1"]),
        ({"service": "payment"}, ["1"]),
        ({"service": "cart"}, ["2", "1"]),
        ({"service": "nothing"}, []),
        ({"operation": "GET /items"}, ["3"]),
        ({"service": "cart", "operation": "POST /charge"}, []),  # one span meets both
        ({"min_duration_ns": 100 * MS}, ["2", "1"]),
        ({"min_duration_ns": 500 * MS}, ["2"]),
        ({"service": "payment", "min_duration_ns": 100 * MS}, []),
        ({"errors_only": True}, ["1"]),
        ({"since_ns": T0 + 500 * MS}, ["3", "2"]),
        ({"order": "slowest"}, ["2", "1", "3"]),
        ({"limit": 2}, ["3", "2"]),
        ({"order": "slowest", "limit": 1}, ["2"]),
    ],
)
def test_each_filter(shop: Database, query: dict[str, Any], expected: list[str]) -> None:
    assert traces(shop, **query) == expected


def test_get_trace_and_a_root_not_received_yet(db: Database) -> None:
    record(
        db,
        span(7, 3, parent=2, service="payment", start_ms=20, http_method="POST"),
        span(7, 2, parent=1, service="cart", name="POST payment", start_ms=10),
    )
    with db.transaction(write=False) as session:
        rows = repository.get_trace(session, f"{7:032x}")
        (summary,) = repository.find_traces(session)
        assert repository.get_trace(session, f"{8:032x}") == []
    assert [r.span_id for r in rows] == [f"{2:016x}", f"{3:016x}"]  # start order
    assert rows[1].attributes == {"http_method": "POST"}
    assert rows[1].resource_attributes == {"service.name": "payment"}
    assert (rows[1].duration_ns, rows[1].received_at) == (10 * MS, NOW)
    # No span without a parent yet: the earliest stands in for the root.
    assert (summary.root_service, summary.root_operation) == ("cart", "POST payment")


def test_a_span_sent_twice_is_stored_once(db: Database) -> None:
    record(db, span(1, 1), span(1, 2, parent=1))
    record(db, span(1, 1, name="changed"), span(1, 3, parent=1))
    assert count(db) == 3
    with db.transaction(write=False) as session:
        assert repository.get_trace(session, f"{1:032x}")[0].name == "GET /cart"


def test_many_spans_in_one_call(db: Database) -> None:
    record(db, *(span(1 + i // 100, 1 + i % 100, start_ms=i) for i in range(1200)))
    assert count(db) == 1200
    assert len(traces(db, limit=500)) == 12


def test_trim_by_age(shop: Database) -> None:
    with shop.transaction() as session:
        deleted = repository.trim_spans(
            session, started_before_ns=T0 + 1000 * MS, max_spans=1_000_000
        )
    assert deleted == 3  # trace 1's spans started before; trace 2's root did not
    assert traces(shop) == ["3", "2"]


def test_trim_by_count_keeps_the_newest(shop: Database) -> None:
    with shop.transaction() as session:
        assert repository.trim_spans(session, started_before_ns=0, max_spans=2) == 3
        assert repository.trim_spans(session, started_before_ns=0, max_spans=2) == 0
    assert traces(shop) == ["3", "2"]


def test_trim_in_batches(db: Database) -> None:
    record(db, *(span(1, 1 + i, start_ms=i) for i in range(50)))
    with db.transaction() as session:
        assert (
            repository.trim_spans(session, started_before_ns=T0 + 30 * MS, max_spans=5, batch=20)
            == 20
        )
    assert count(db) == 30
    with db.transaction() as session:
        # 10 more too old, then the oldest beyond the newest 5: 15 more.
        assert (
            repository.trim_spans(session, started_before_ns=T0 + 30 * MS, max_spans=5, batch=20)
            == 20
        )
        assert (
            repository.trim_spans(session, started_before_ns=T0 + 30 * MS, max_spans=5, batch=20)
            == 5
        )
    with db.transaction(write=False) as session:
        kept = repository.get_trace(session, f"{1:032x}")
    assert [r.start_ns for r in kept] == [T0 + i * MS for i in range(45, 50)]
