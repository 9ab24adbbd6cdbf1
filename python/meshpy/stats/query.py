"""Answers over a window of edge traffic: golden metrics per service, or per edge.

Per service (Linkerd's ``stat``) a service's row is what its own sidecars served
(server side, inbound), optionally only from one caller (``source``). With ``destination``
the rows are what the service's sidecars sent to that service (client side, outbound),
which also covers callees without a sidecar. Per edge, each row is one caller → callee
pair as the callee's sidecar saw it: the caller's verified identity and whether it came
over mTLS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from meshpy.stats.histogram import bucket_bound, histogram_quantile
from meshpy.stats.series import Counts, EdgeKey, End

__all__ = ["By", "Row", "Selection", "rows"]

By = Literal["service", "edge"]


@dataclass(frozen=True)
class Selection:
    """Which traffic a question is about; None matches anything."""

    namespace: str | None = None
    service: str | None = None
    version: str | None = None
    source: str | None = None
    """Only traffic from this service (``--from``)."""
    destination: str | None = None
    """Only traffic to this service, as its callers' sidecars counted it (``--to``)."""


@dataclass(frozen=True)
class Row:
    """Golden metrics of one service (``source`` None) or one edge, over a window."""

    destination: End
    source: End | None
    identity: str | None
    mtls: bool | None
    counts: Counts
    window_s: float
    open_connections: int = 0
    """Connections open now, as the sidecars last reported."""

    @property
    def requests(self) -> int:
        """Responses in the window."""
        return self.counts.requests

    @property
    def success_rate(self) -> float | None:
        """The share of responses that were not 5xx; None without any."""
        total = self.counts.requests
        return (total - self.counts.failures) / total if total else None

    @property
    def rps(self) -> float:
        """Responses per second over the window."""
        return self.counts.requests / self.window_s

    def bytes_per_s(self, counter: str) -> float:
        """``read_bytes`` or ``write_bytes`` per second over the window."""
        return self.counts.tcp.get(counter, 0) / self.window_s

    def latency(self, q: float) -> float | None:
        """The ``q`` quantile of the request duration, in seconds; None without requests."""
        buckets = [(bucket_bound(le), n) for le, n in self.counts.buckets.items()]
        return histogram_quantile(q, buckets) if self.counts.requests else None


def _matches(end: End, namespace: str | None, service: str | None, version: str | None) -> bool:
    return (
        (namespace is None or end.namespace == namespace)
        and (service is None or end.service == service)
        and (version is None or end.version == version)
    )


Group = tuple[End, End | None, str | None, bool | None]
"""A row's ends, identity and mTLS: the traffic that shares them is added up."""


def _client_side(key: EdgeKey, s: Selection) -> Group | None:
    """With ``destination``: what the service's own sidecars sent there."""
    if key.side != "client" or key.destination.service != s.destination:
        return None
    if not _matches(key.source, s.namespace, s.service, s.version):
        return None
    return (key.destination, key.source, None, None)


def _server_side(key: EdgeKey, s: Selection) -> Group | None:
    """What the service's own sidecars served."""
    if key.side != "server" or not _matches(key.destination, s.namespace, s.service, s.version):
        return None
    if s.source is not None and key.source.service != s.source:
        return None
    return (key.destination, None, None, None)


def _edge(key: EdgeKey, s: Selection) -> Group | None:
    """An edge as its callee saw it, when either end is the selected one."""
    ends = (key.source, key.destination)
    if key.side != "server":
        return None
    if s.namespace is not None and all(end.namespace != s.namespace for end in ends):
        return None
    if s.service is not None and all(end.service != s.service for end in ends):
        return None
    if s.source is not None and key.source.service != s.source:
        return None
    if s.destination is not None and key.destination.service != s.destination:
        return None
    return (key.destination, key.source, key.identity, key.mtls)


def rows(
    window: Iterable[tuple[EdgeKey, Counts]],
    selection: Selection,
    by: By,
    window_s: float,
    open_connections: Iterable[tuple[EdgeKey, int]] = (),
) -> list[Row]:
    """The rows answering ``selection`` grouped ``by``, sorted by their ends; an edge with
    connections open (``open_connections``) has a row even without traffic."""
    if by == "edge":
        group_of = _edge
    else:
        group_of = _client_side if selection.destination is not None else _server_side
    grouped: dict[Group, Counts] = {}
    opened: dict[Group, int] = {}
    for key, counts in window:
        group = group_of(key, selection)
        if group is None:
            continue
        if group in grouped:
            grouped[group].add(counts)
        else:
            grouped[group] = counts.copy()
    for key, count in open_connections:
        group = group_of(key, selection)
        if group is not None:
            opened[group] = opened.get(group, 0) + count
            grouped.setdefault(group, Counts())
    ordered = sorted(
        grouped.items(),
        key=lambda item: (
            item[0][1] or End("", "", ""),
            item[0][0],
            item[0][2] or "",
            bool(item[0][3]),
        ),
    )
    return [
        Row(d, src, ident, mtls, counts, window_s, opened.get((d, src, ident, mtls), 0))
        for (d, src, ident, mtls), counts in ordered
    ]
