"""A trace as a waterfall: spans in tree order, each with its offset and a bar on one time
scale. The layout is pure (``layout``, ``bar``); ``waterfall_table`` and ``traces_table``
draw the API's answers with rich."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meshpy.cli._output import render

__all__ = [
    "Row",
    "bar",
    "format_duration",
    "layout",
    "short_identity",
    "traces_table",
    "tree_order",
    "waterfall_table",
]

BAR_WIDTH = 40
"""Columns of the timeline: the whole trace."""
_SPIFFE = re.compile(r"^spiffe://[^/]+/ns/([^/]+)/sa/([^/]+)$")


@dataclass(frozen=True)
class Row:
    """One span of the waterfall."""

    span: dict[str, Any]
    depth: int
    offset_ns: int
    """From the trace's start to the span's."""
    bar_start: int
    bar_length: int


def tree_order(spans: Sequence[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Spans depth first, each after its parent, siblings by start; with their depth.

    A span whose parent is missing (not received, or left out) is a root. Every span comes
    out once, even from a malformed trace whose parents go round in a circle.
    """
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_span_id")
        key = parent if parent in ids and parent != span["span_id"] else None
        children.setdefault(key, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: (s["start_time_unix_nano"], s["span_id"]))
    ordered: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    roots = children.get(None, [])
    leftovers = sorted(spans, key=lambda s: (s["start_time_unix_nano"], s["span_id"]))
    for start in [*roots, *leftovers]:
        stack = [(0, start)]
        while stack:
            depth, span = stack.pop()
            if span["span_id"] in seen:
                continue
            seen.add(span["span_id"])
            ordered.append((depth, span))
            below = children.get(span["span_id"], [])
            stack.extend((depth + 1, child) for child in reversed(below))
    return ordered


def bar(offset_ns: int, duration_ns: int, total_ns: int, width: int = BAR_WIDTH) -> tuple[int, int]:
    """Where a span's bar starts and how long it is, in ``width`` columns for the trace.

    Every span gets one column at least, even an instant one, and stays inside the width.
    """
    if total_ns <= 0:
        return 0, width
    start = min(width - 1, max(0, offset_ns * width // total_ns))
    end = -(-(offset_ns + duration_ns) * width // total_ns)  # rounded up
    return start, max(1, min(width, end) - start)


def layout(trace: dict[str, Any], width: int = BAR_WIDTH) -> list[Row]:
    """The rows of a trace (the API's answer) in tree order."""
    t0 = trace["start_time_unix_nano"]
    total = trace["duration_ns"]
    rows = []
    for depth, span in tree_order(trace["spans"]):
        offset = span["start_time_unix_nano"] - t0
        start, length = bar(offset, span["duration_ns"], total, width)
        rows.append(Row(span, depth, offset, start, length))
    return rows


def format_duration(ns: int) -> str:
    """A duration short and readable: 850µs, 12.5ms, 1.25s."""
    if ns < 1_000_000:
        return f"{ns / 1_000:.0f}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.3g}ms" if ns < 100_000_000 else f"{ns // 1_000_000}ms"
    return f"{ns / 1_000_000_000:.3g}s"


def short_identity(identity: object) -> str:
    """A SPIFFE workload ID as namespace/service; anything else as it is."""
    if not isinstance(identity, str):
        return ""
    match = _SPIFFE.match(identity)
    return f"{match[1]}/{match[2]}" if match else identity


def _status(span: dict[str, Any]) -> str:
    status = span["status_code"]
    code = span.get("http_status_code")
    return f"{status} {code}" if code is not None else status


def _identities(attributes: dict[str, Any]) -> str:
    source = short_identity(attributes.get("meshpy.source.identity"))
    destination = short_identity(attributes.get("meshpy.destination.identity"))
    if not source and not destination:
        return ""
    return f"{source or '?'} → {destination or '?'}"


def waterfall_table(trace: dict[str, Any]) -> str:
    """The ``meshpy trace`` table."""
    from rich.table import Table

    header = (
        f"trace {trace['trace_id']}: {trace['span_count']} spans, "
        f"{format_duration(trace['duration_ns'])}, services {', '.join(trace['services'])}"
    )
    table = Table(title=header, title_justify="left", box=None, pad_edge=False)
    for column in ("SERVICE", "OPERATION", "START", "DURATION", "TIMELINE", "STATUS"):
        table.add_column(column, no_wrap=column in ("START", "DURATION", "TIMELINE"))
    table.add_column("SOURCE → DESTINATION")
    for row in layout(trace):
        span = row.span
        timeline = " " * row.bar_start + "█" * row.bar_length
        table.add_row(
            "  " * row.depth + span["service"],
            span["name"],
            f"+{format_duration(row.offset_ns)}",
            format_duration(span["duration_ns"]),
            timeline.ljust(BAR_WIDTH).replace(" ", "·"),
            _status(span),
            _identities(span["attributes"]),
        )
    text = render(table)
    if trace.get("truncated"):
        text += "(more spans than shown: the trace was cut)\n"
    return text


def traces_table(data: dict[str, Any]) -> str:
    """The ``meshpy traces`` table."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("TRACE ID", "ROOT", "START", "DURATION", "SPANS", "ERROR", "SERVICES"):
        table.add_column(column, no_wrap=column != "SERVICES")
    for t in data["items"]:
        start = datetime.fromisoformat(t["start_time"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            t["trace_id"],
            f"{t['root_service']} {t['root_operation']}",
            start,
            format_duration(t["duration_ns"]),
            str(t["span_count"]),
            "error" if t["error"] else "",
            ", ".join(t["services"]),
        )
    return render(table)
