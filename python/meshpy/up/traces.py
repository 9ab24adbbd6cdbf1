"""The run's slowest traces, read from the control plane before it stops, for the summary."""

from __future__ import annotations

import logging
from typing import Any

from meshpy.up.state import UpState

__all__ = ["SLOWEST", "read_slowest", "trace_lines"]

log = logging.getLogger("meshpy.up")

SLOWEST = 3
"""How many of the slowest traces the summary shows."""


def read_slowest(up: UpState, count: int = SLOWEST) -> list[dict[str, Any]]:
    """The ``count`` slowest traces the control plane stored (empty if it can't say)."""
    import httpx

    server = up.server
    if server is None or server.api is None:
        return []
    try:
        answer = server.api.get(
            "/api/v1/traces", params={"order": "slowest", "limit": count}, timeout=2.0
        )
        answer.raise_for_status()
        items: list[dict[str, Any]] = answer.json()["items"]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        log.debug("no traces for the summary: %s", exc)
        return []
    return items


def trace_lines(traces: list[dict[str, Any]]) -> list[str]:
    """Summary lines: the slowest traces, with how to draw each one."""
    if not traces:
        return []
    lines = ["slowest traces (stored by the control plane: `meshpy trace ID` while it runs):"]
    for trace in traces:
        services = ", ".join(trace.get("services") or [])
        error = ", failed" if trace.get("error") else ""
        lines.append(
            f"  {trace['trace_id']}  {trace['duration_ns'] / 1e6:7.1f}ms  "
            f"{trace.get('span_count', 0)} spans across {services}{error}"
        )
    return lines
