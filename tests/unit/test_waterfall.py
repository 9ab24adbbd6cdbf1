"""The waterfall's layout: tree order, offsets and bar lengths, durations, identities."""

from __future__ import annotations

from typing import Any

import pytest

from meshpy.cli.waterfall import bar, format_duration, layout, short_identity, tree_order

MS = 1_000_000


def span(span_id: str, parent: str | None, start_ms: int, duration_ms: int) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "parent_span_id": parent,
        "start_time_unix_nano": start_ms * MS,
        "duration_ns": duration_ms * MS,
    }


@pytest.mark.parametrize(
    ("offset", "duration", "total", "width", "expected"),
    [
        (0, 100, 100, 40, (0, 40)),  # the root fills the timeline
        (10, 80, 100, 40, (4, 32)),
        (25, 50, 100, 40, (10, 20)),
        (0, 0, 100, 40, (0, 1)),  # an instant span still shows
        (100, 0, 100, 40, (39, 1)),  # at the very end: inside the width
        (99, 1, 100, 40, (39, 1)),
        (1, 1, 100, 40, (0, 1)),
        (33, 33, 100, 10, (3, 4)),  # partial columns round outwards
        (0, 5, 0, 40, (0, 40)),  # a trace of no length
        (0, 150, 100, 40, (0, 40)),  # a span past the end is cut
    ],
)
def test_bar(offset: int, duration: int, total: int, width: int, expected: tuple[int, int]) -> None:
    assert bar(offset, duration, total, width) == expected


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], []),
        ([span("a", None, 0, 1)], [(0, "a")]),
        (
            # children after their parent, siblings by start, whatever the input order
            [
                span("c2", "b", 30, 1),
                span("b", "a", 10, 50),
                span("a", None, 0, 100),
                span("c1", "b", 20, 1),
                span("d", "a", 70, 1),
            ],
            [(0, "a"), (1, "b"), (2, "c1"), (2, "c2"), (1, "d")],
        ),
        (
            # a parent not received: its children are roots
            [span("x", "missing", 5, 1), span("a", None, 0, 10), span("y", "x", 6, 1)],
            [(0, "a"), (0, "x"), (1, "y")],
        ),
        (
            # parents in a circle: every span once all the same
            [span("p", "q", 0, 1), span("q", "p", 1, 1), span("s", "s", 2, 1)],
            [(0, "s"), (0, "p"), (1, "q")],
        ),
    ],
)
def test_tree_order(spans: list[dict[str, Any]], expected: list[tuple[int, str]]) -> None:
    assert [(depth, s["span_id"]) for depth, s in tree_order(spans)] == expected


def test_layout_offsets_and_bars() -> None:
    trace = {
        "start_time_unix_nano": 1000 * MS,
        "duration_ns": 120 * MS,
        "spans": [
            span("a", None, 1000, 120),
            span("b", "a", 1010, 100),
            span("c", "b", 1020, 80),
            span("d", "a", 1115, 0),
        ],
    }
    rows = layout(trace, width=12)
    assert [
        (r.span["span_id"], r.depth, r.offset_ns // MS, r.bar_start, r.bar_length) for r in rows
    ] == [
        ("a", 0, 0, 0, 12),
        ("b", 1, 10, 1, 10),
        ("c", 2, 20, 2, 8),
        ("d", 1, 115, 11, 1),
    ]


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0µs"),
        (850_000, "850µs"),
        (1_000_000, "1ms"),
        (12_500_000, "12.5ms"),
        (99_900_000, "99.9ms"),
        (120_000_000, "120ms"),
        (999_999_999, "999ms"),
        (1_250_000_000, "1.25s"),
        (75_000_000_000, "75s"),
    ],
)
def test_format_duration(ns: int, text: str) -> None:
    assert format_duration(ns) == text


@pytest.mark.parametrize(
    ("identity", "short"),
    [
        ("spiffe://meshpy.local/ns/default/sa/cart", "default/cart"),
        ("spiffe://example.org/ns/shop/sa/payment", "shop/payment"),
        ("spiffe://example.org/other/path", "spiffe://example.org/other/path"),
        (None, ""),
        (7, ""),
    ],
)
def test_short_identity(identity: object, short: str) -> None:
    assert short_identity(identity) == short
