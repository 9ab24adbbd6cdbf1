"""The proxy's per-edge metrics, read into the edge reports a lease renewal carries.

The core counts every request on the edge it crossed (``http_server_request_duration_seconds``
inbound, ``http_client_request_duration_seconds`` outbound), per method and status code;
gRPC responses by ``grpc_status``; and connections and bytes (``meshpy_tcp_*``). A report
keeps, per edge, the responses by status code, the duration histogram with methods and
codes added up, the gRPC statuses and the connection counters. The reporting instance is
one end of each edge; the report names the other (the caller inbound, the callee
outbound) as ``peer``. Counters are cumulative since the proxy started, as the core keeps
them.
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

TCP_COUNTERS = {
    "meshpy_tcp_open_total": "opened",
    "meshpy_tcp_close_total": "closed",
    "meshpy_tcp_read_bytes_total": "read_bytes",
    "meshpy_tcp_write_bytes_total": "write_bytes",
}
"""The core's per-edge connection counters, and their names in a report."""
GRPC_RESPONSES = "meshpy_grpc_responses_total"

_PEER = {"inbound": "source", "outbound": "destination"}

# A sample line of the families above; the sidecar imports nothing but the standard library
# (a parser package would be its only third-party import), and the core writes these lines
# in one fixed form.
_SAMPLE = re.compile(
    r"^(http_(?:server|client)_request_duration_seconds_(?:bucket|count)"
    r"|meshpy_grpc_responses_total|meshpy_tcp_(?:open|close|read_bytes|write_bytes)_total)"
    r"\{([^}]*)\}\s+(\S+)"
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
            "grpc": {},
            "tcp": {},
        }
    return edge


def _add(counts: dict[str, int], key: str, count: int) -> None:
    counts[key] = counts.get(key, 0) + count


def edge_reports(metrics: str) -> list[dict[str, Any]]:
    """The edges in the Prometheus text of ``Proxy.metrics()``, in the order first seen.

    Each: ``{"direction", "peer": {"namespace", "service", "version"}, "identity",
    "mtls", "responses": {code: count}, "duration_buckets": {le: count},
    "grpc": {grpc_status: count}, "tcp": {"opened", "closed", "read_bytes", "write_bytes"}}``.
    """
    edges: dict[tuple[str, ...], dict[str, Any]] = {}
    for line in metrics.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        name, label_text, value = sample.groups()
        labels = dict(_LABEL.findall(label_text))
        try:
            count = int(float(value))
        except ValueError:
            continue
        family, _, suffix = name.rpartition("_")
        direction = EDGE_FAMILIES.get(family) or labels.get("direction", "")
        if direction not in _PEER:
            continue
        edge = _edge(edges, direction, labels)
        if name == GRPC_RESPONSES:
            _add(edge["grpc"], labels.get("grpc_status", "other"), count)
        elif name in TCP_COUNTERS:
            _add(edge["tcp"], TCP_COUNTERS[name], count)
        elif suffix == "count":
            _add(edge["responses"], labels.get("http_response_status_code", ""), count)
        elif "le" in labels:
            _add(edge["duration_buckets"], labels["le"], count)
    return list(edges.values())
