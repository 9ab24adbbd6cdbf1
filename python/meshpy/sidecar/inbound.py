"""A compact, cumulative summary of the sidecar's inbound listener, sent with each lease renewal.

The control plane keeps the latest one per instance and sums them per service and version
(``GET .../services/{svc}/stats``); ``meshpy rollout`` gates a canary on their differences.
The counters are cumulative since ``started_at`` (when this sidecar's proxy started): a
restarted sidecar starts from zero with a new ``started_at``, which tells a reader that
the counters were reset.

Requests by status class come from ``Proxy.stats()``; the request duration histogram from
the Prometheus text of ``Proxy.metrics()``, of which only the inbound bucket lines are read.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

__all__ = ["INBOUND", "StatsSource", "duration_buckets", "inbound_stats"]

INBOUND = "inbound"
"""The name the snapshot gives a sidecar's inbound listener."""

_BUCKET = re.compile(r"^http_server_request_duration_seconds_bucket\{([^}]*)\}\s+(\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


class StatsSource(Protocol):
    """What is read from the proxy core (``meshpy._core.Proxy``)."""

    def stats(self) -> dict[str, Any]: ...

    def metrics(self) -> str: ...


def duration_buckets(metrics: str) -> dict[str, int]:
    """The cumulative duration buckets of the inbound requests, every edge, method and
    status added up: ``{le: count}``.

    ``le`` is kept as the core writes it ("0.005", "1.0", "+Inf").
    """
    buckets: dict[str, int] = {}
    for line in metrics.splitlines():
        match = _BUCKET.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(1)))
        if labels.get("direction") != "inbound" or "le" not in labels:
            continue
        try:
            count = int(float(match.group(2)))
        except ValueError:
            continue
        buckets[labels["le"]] = buckets.get(labels["le"], 0) + count
    return buckets


def inbound_stats(proxy: StatsSource, started_at: str) -> dict[str, Any] | None:
    """The lease body's ``stats``: None while there is no HTTP inbound listener."""
    listener = proxy.stats().get("listeners", {}).get(INBOUND)
    if not isinstance(listener, dict):
        return None
    requests = listener.get("requests")
    if not isinstance(requests, dict):
        return None  # a TCP service: no requests to count
    buckets = duration_buckets(proxy.metrics())
    return {
        "started_at": started_at,
        "requests": {c: int(requests.get(c, 0)) for c in _CLASSES},
        "duration_buckets": buckets,
    }
