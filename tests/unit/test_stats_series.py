"""Edge traffic from cumulative reports: increases across restarts, slots, windows and bounds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meshpy.stats.query import Selection, rows
from meshpy.stats.series import Counts, EdgeKey, EdgeSeries, End, increase

T0 = 1_800_000_000.0  # seconds; a multiple of 10
BOOT = datetime.fromtimestamp(T0 + 1, UTC)
CART = End("default", "cart", "v1")
PAY = End("default", "payment", "v2")
PAY_ANY = End("default", "payment", "unknown")
IDENT = "spiffe://mesh.local/ns/default/sa/cart"
SERVER = EdgeKey("server", End("default", "cart", "unknown"), PAY, IDENT, True)
CLIENT = EdgeKey("client", CART, PAY_ANY, "", True)


def counts(ok: int, failed: int = 0) -> Counts:
    responses = {"200": ok} | ({"503": failed} if failed else {})
    return Counts(responses, {"0.01": ok, "+Inf": ok + failed})


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, counts(5), counts(5)),
        (counts(5), counts(8), Counts({"200": 3}, {"0.01": 3, "+Inf": 3})),
        (counts(5), counts(5, 2), Counts({"200": 0, "503": 2}, {"0.01": 0, "+Inf": 2})),
        (counts(5), counts(3), counts(3)),  # went down: restarted, all new
        (
            counts(5),
            Counts({"200": 5}, {"0.01": 4, "+Inf": 5}),
            Counts({"200": 5}, {"0.01": 4, "+Inf": 5}),
        ),
    ],
)
def test_increase(before: Counts | None, after: Counts, expected: Counts) -> None:
    assert increase(before, after) == expected


def series() -> EdgeSeries:
    return EdgeSeries(started=T0, resolution_s=10.0, retention_s=60.0, max_series=3)


def total(s: EdgeSeries, now: float, seconds: float) -> dict[EdgeKey, int]:
    return {key: c.requests for key, c in s.window(now, seconds)}


def test_reports_add_their_differences_in_slots() -> None:
    s = series()
    s.record("i1", BOOT, {SERVER: counts(4)}, T0 + 5)
    s.record("i1", BOOT, {SERVER: counts(10, 1)}, T0 + 15)
    s.record("i1", BOOT, {SERVER: counts(10, 1), CLIENT: counts(2)}, T0 + 17)
    assert total(s, T0 + 19, 10) == {SERVER: 7, CLIENT: 2}
    assert total(s, T0 + 19, 20) == {SERVER: 11, CLIENT: 2}
    # A slot leaves the window whole: at T0+25 a 10 s window starts in slot T0+20.
    assert total(s, T0 + 25, 10) == {}


def test_restart_counts_the_new_process_from_zero() -> None:
    s = series()
    s.record("i1", BOOT, {SERVER: counts(10)}, T0 + 5)
    later = datetime.fromtimestamp(T0 + 20, UTC)
    s.record("i1", later, {SERVER: counts(3)}, T0 + 25)
    assert total(s, T0 + 29, 30) == {SERVER: 13}


def test_a_sidecar_older_than_the_series_counts_from_its_second_report() -> None:
    s = series()
    old = datetime.fromtimestamp(T0 - 3600, UTC)
    s.record("i1", old, {SERVER: counts(1000)}, T0 + 5)
    assert total(s, T0 + 9, 60) == {}
    s.record("i1", old, {SERVER: counts(1004), CLIENT: counts(2)}, T0 + 15)
    assert total(s, T0 + 19, 60) == {SERVER: 4, CLIENT: 2}


def test_old_slots_and_quiet_reporters_expire_and_series_are_bounded() -> None:
    s = series()
    keys = [EdgeKey("server", End("default", f"c{i}", "unknown"), PAY, "", False) for i in range(5)]
    s.record("i1", BOOT, {k: counts(1) for k in keys}, T0 + 5)
    assert len(total(s, T0 + 9, 60)) == 3
    assert s.dropped == 2
    s.record("i2", BOOT, {SERVER: counts(1)}, T0 + 200)  # i1's slots are past the hour
    assert total(s, T0 + 200, 60) == {SERVER: 1}
    s.record("i1", BOOT, {k: counts(2) for k in keys}, T0 + 205)  # i1 was forgotten
    assert sorted(total(s, T0 + 205, 60).values()) == [1, 2, 2]  # 3 series at most
    assert s.dropped == 5


def test_forget_drops_the_baseline_not_the_traffic() -> None:
    s = series()
    s.record("i1", BOOT, {SERVER: counts(3)}, T0 + 5)
    s.forget("i1")
    assert total(s, T0 + 9, 60) == {SERVER: 3}


WINDOW = [
    (SERVER, counts(8, 2)),
    (EdgeKey("server", End("default", "web", "unknown"), PAY, "", False), counts(5)),
    (EdgeKey("server", CART, End("default", "cart", "v1"), "", False), counts(1)),
    (CLIENT, counts(9, 1)),
]


@pytest.mark.parametrize(
    ("selection", "by", "expected"),
    [
        (Selection(service="payment"), "service", [(None, PAY, 15)]),
        (Selection(service="payment", source="cart"), "service", [(None, PAY, 10)]),
        (Selection(service="payment", version="v1"), "service", []),
        (Selection(), "service", [(None, End("default", "cart", "v1"), 1), (None, PAY, 15)]),
        (Selection(service="cart", destination="payment"), "service", [(CART, PAY_ANY, 10)]),
        (
            Selection(service="payment"),
            "edge",
            [
                (End("default", "cart", "unknown"), PAY, 10),
                (End("default", "web", "unknown"), PAY, 5),
            ],
        ),
        (Selection(namespace="other"), "edge", []),
    ],
)
def test_rows(selection: Selection, by: str, expected: list[tuple[End | None, End, int]]) -> None:
    found = rows(WINDOW, selection, by, 60.0)  # type: ignore[arg-type]
    assert [(r.source, r.destination, r.requests) for r in found] == expected


def test_grpc_failures_and_connections_count() -> None:
    grpc = Counts({"200": 10}, {"+Inf": 10}, {"0": 7, "14": 3}, {"opened": 2, "read_bytes": 500})
    [row] = rows([(SERVER, grpc)], Selection(service="payment"), "service", 10.0)
    assert (row.requests, row.counts.failures, row.success_rate) == (10, 3, 0.7)
    assert row.bytes_per_s("read_bytes") == 50.0
    tcp_only = Counts(tcp={"opened": 1, "closed": 1, "write_bytes": 40})
    s = series()
    s.record("i1", BOOT, {SERVER: tcp_only}, T0 + 5)
    s.record("i2", BOOT, {SERVER: Counts(tcp={"opened": 3, "closed": 1})}, T0 + 6)
    assert total(s, T0 + 9, 60) == {SERVER: 0}, "no request, but traffic all the same"
    assert sorted(n for _, n in s.open_connections(T0 + 9)) == [2]
    assert list(s.open_connections(T0 + 60)) == [], "reporters gone quiet are not counted"
    [quiet] = rows([], Selection(service="payment"), "service", 60.0, s.open_connections(T0 + 9))
    assert (quiet.destination, quiet.requests, quiet.open_connections) == (PAY, 0, 2)


def test_row_metrics() -> None:
    [row] = rows(WINDOW, Selection(service="payment", source="cart"), "service", 5.0)
    assert (row.requests, row.success_rate, row.rps) == (10, 0.8, 2.0)
    assert row.latency(0.5) == pytest.approx(0.01 * 5 / 8)
    assert row.latency(0.99) == 0.01  # in the +Inf bucket: the highest finite bound
    [edge] = rows(WINDOW, Selection(service="payment", source="cart"), "edge", 60.0)
    assert (edge.identity, edge.mtls) == (IDENT, True)
