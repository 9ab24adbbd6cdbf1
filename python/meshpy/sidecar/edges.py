"""The proxy's per-edge request metrics, read into the edge reports a lease renewal carries.

The core counts every request on the edge it crossed (``http_server_request_duration_seconds``
inbound, ``http_client_request_duration_seconds`` outbound), per method and status code.
A report keeps, per edge, the responses by status code and the duration histogram with
methods and codes added up. The reporting instance is one end of each edge; the report
names the other (the caller inbound, the callee outbound) as ``peer``. Counters are
cumulative since the proxy started, as the core keeps them.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["EDGE_FAMILIES", "edge_reports"]

EDGE_FAMILIES = {
    "http_server_request_duration_seconds": "inbound",
    "http_client_request_duration_seconds": "outbound",
}
"""The core's per-edge histogram families, and the direction each counts."""

_PEER = {"inbound": "source", "outbound": "destination"}

# A sample line of the families above; the sidecar imports nothing but the standard library
# (a parser package would be its only third-party import), and the core writes these lines
# in one fixed form.
_SAMPLE = re.compile(
    r"^(http_(?:server|client)_request_duration_seconds)_(bucket|count)\{([^}]*)\}\s+(\S+)"
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _edge(
    edges: dict[tuple[str, ...], dict[str, Any]], direction: str, labels: dict[str, str]
) -> dict[str, Any]:
    """The report of the edge a sample's labels name, made on its first sample."""
    peer = _PEER[direction]
    key = (
        direction,
        labels.get(f"{peer}_namespace", "unknown"),
        labels.get(f"{peer}_service", "unknown"),
        labels.get(f"{peer}_version", "unknown"),
        labels.get("source_identity", "") if direction == "inbound" else "",
        labels.get("mtls", "false"),
    )
    edge = edges.get(key)
    if edge is None:
        edge = edges[key] = {
            "direction": direction,
            "peer": {"namespace": key[1], "service": key[2], "version": key[3]},
            "identity": key[4],
            "mtls": key[5] == "true",
            "responses": {},
            "duration_buckets": {},
        }
    return edge


def edge_reports(metrics: str) -> list[dict[str, Any]]:
    """The edges in the Prometheus text of ``Proxy.metrics()``, in the order first seen.

    Each: ``{"direction", "peer": {"namespace", "service", "version"}, "identity",
    "mtls", "responses": {code: count}, "duration_buckets": {le: count}}``.
    """
    edges: dict[tuple[str, ...], dict[str, Any]] = {}
    for line in metrics.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        family, suffix, label_text, value = sample.groups()
        labels = dict(_LABEL.findall(label_text))
        try:
            count = int(float(value))
        except ValueError:
            continue
        edge = _edge(edges, EDGE_FAMILIES[family], labels)
        if suffix == "count":
            code = labels.get("http_response_status_code", "")
            edge["responses"][code] = edge["responses"].get(code, 0) + count
        elif "le" in labels:
            le = labels["le"]
            edge["duration_buckets"][le] = edge["duration_buckets"].get(le, 0) + count
    return list(edges.values())
