"""A compact, cumulative summary of the sidecar's inbound listener, sent with each lease renewal.

The control plane keeps the latest one per instance and sums them per service and version
(``GET .../services/{svc}/stats``); ``meshpy rollout`` gates a canary on their differences.
The counters are cumulative since ``started_at`` (when this sidecar's proxy started): a
restarted sidecar starts from zero with a new ``started_at``, which tells a reader that
the counters were reset.

Requests by status class come from ``Proxy.stats()``; the request duration histogram and
the per-edge reports (``meshpy.sidecar.edges``) from the Prometheus text of
``Proxy.metrics()``. The control plane keeps a time series of the edges' traffic, from
which ``GET /api/v1/stats`` answers.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from meshpy.sidecar.edges import edge_reports

__all__ = ["INBOUND", "MAX_EDGES", "StatsSource", "busiest", "duration_buckets", "inbound_stats"]

INBOUND = "inbound"
"""The name the snapshot gives a sidecar's inbound listener."""

log = logging.getLogger("meshpy.sidecar.inbound")

_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

MAX_EDGES = 2048
"""Edges in one report, as the control plane takes them; the busiest are kept."""


class StatsSource(Protocol):
    """What is read from the proxy core (``meshpy._core.Proxy``)."""

    def stats(self) -> dict[str, Any]: ...

    def metrics(self) -> str: ...


def duration_buckets(edges: list[dict[str, Any]]) -> dict[str, int]:
    """The cumulative duration buckets of the inbound edges added up: ``{le: count}``."""
    buckets: dict[str, int] = {}
    for edge in edges:
        if edge["direction"] == "inbound":
            for le, count in edge["duration_buckets"].items():
                buckets[le] = buckets.get(le, 0) + count
    return buckets


def busiest(edges: list[dict[str, Any]], limit: int = MAX_EDGES) -> list[dict[str, Any]]:
    """``edges``, or the ``limit`` with the most requests and connections when there are
    more: the control plane refuses a longer report, and would then get none."""
    if len(edges) <= limit:
        return edges
    log.debug("%d edges: reporting the %d busiest", len(edges), limit)

    def traffic(edge: dict[str, Any]) -> int:
        return int(sum(edge["responses"].values())) + int(edge["tcp"].get("opened", 0))

    return sorted(edges, key=traffic, reverse=True)[:limit]


def inbound_stats(proxy: StatsSource, started_at: str) -> dict[str, Any] | None:
    """The lease body's ``stats``: None while there is no HTTP inbound listener and no
    edge has had a request."""
    edges = busiest(edge_reports(proxy.metrics()))
    listener = proxy.stats().get("listeners", {}).get(INBOUND)
    requests = listener.get("requests") if isinstance(listener, dict) else None
    if not isinstance(requests, dict):
        if not edges:
            return None
        requests = {}  # a TCP service, or no inbound listener: its edges still count
    return {
        "started_at": started_at,
        "requests": {c: int(requests.get(c, 0)) for c in _CLASSES},
        "duration_buckets": duration_buckets(edges),
        "edges": edges,
    }
