"""Per-edge traffic as a bounded time series, from the cumulative counters sidecars report.

Each lease renewal carries the reporting sidecar's counters per edge, cumulative since its
proxy started. What an edge served between two reports is their difference
(:func:`increase`), which is added to the edge's slot of ``resolution_s`` seconds; slots
older than ``retention_s`` are dropped, and at most ``max_series`` edges are kept.

Why push and differences rather than scraping: the sidecars already renew their lease
every few seconds, from wherever they run, so no control plane has to reach thousands of
admin ports; and cumulative counters lose nothing when a renewal is lost (the next one
carries it). A counter that went down, or a new ``started_at``, means the proxy restarted:
its whole count is new. A sidecar seen for the first time counts from zero if its proxy
started after this series did, and otherwise only from its second report (what it served
before this control plane was watching is not in the window).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Counts", "EdgeKey", "EdgeSeries", "End", "increase"]


@dataclass(frozen=True, order=True)
class End:
    """One end of an edge: a service and version ("unknown" where the proxy didn't know)."""

    namespace: str
    service: str
    version: str


@dataclass(frozen=True, order=True)
class EdgeKey:
    """An edge as one side saw it.

    ``side`` is ``server`` for what the destination's sidecar counted (inbound; it knows
    the caller's verified identity) and ``client`` for what the source's sidecar counted
    (outbound).
    """

    side: str
    source: End
    destination: End
    identity: str
    mtls: bool


@dataclass
class Counts:
    """Responses by status code, the duration histogram (cumulative by ``le``), gRPC
    responses by status, and connection counters (opened, closed, read_bytes, write_bytes)."""

    responses: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=dict)
    grpc: dict[str, int] = field(default_factory=dict)
    tcp: dict[str, int] = field(default_factory=dict)

    def maps(self) -> tuple[dict[str, int], ...]:
        """Every counter map, in one order."""
        return (self.responses, self.buckets, self.grpc, self.tcp)

    @property
    def requests(self) -> int:
        """Responses of every code."""
        return sum(self.responses.values())

    @property
    def failures(self) -> int:
        """5xx responses and gRPC responses other than OK: what counts against a service's
        success rate."""
        http = sum(n for code, n in self.responses.items() if code.startswith("5"))
        return http + sum(n for status, n in self.grpc.items() if status != "0")

    def add(self, other: Counts) -> None:
        """Add ``other`` into these counts."""
        for mine, theirs in zip(self.maps(), other.maps(), strict=True):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n

    def copy(self) -> Counts:
        """These counts, in maps of their own."""
        return Counts(*(dict(counts) for counts in self.maps()))

    def empty(self) -> bool:
        """Whether nothing was counted."""
        return not any(any(counts.values()) for counts in self.maps())


def _decreased(before: Mapping[str, int], after: Mapping[str, int]) -> bool:
    return any(after.get(key, 0) < value for key, value in before.items())


def increase(before: Counts | None, after: Counts) -> Counts:
    """What was counted between two cumulative readings of one edge (``before`` first).

    Without ``before``, or when any counter went down (the proxy restarted), ``after`` is
    all new.
    """
    pairs = list(zip(before.maps(), after.maps(), strict=True)) if before is not None else []
    if before is None or any(_decreased(old, new) for old, new in pairs):
        return after.copy()
    return Counts(*({k: n - old.get(k, 0) for k, n in new.items()} for old, new in pairs))


@dataclass
class _Reporter:
    started_at: datetime
    seen_at: float
    edges: dict[EdgeKey, Counts]


class EdgeSeries:
    """Every edge's traffic in slots of ``resolution_s``, for ``retention_s``, in memory.

    ``now`` is in seconds (``time.time()``); the caller gives it, so tests can drive time.
    """

    def __init__(
        self,
        *,
        started: float,
        resolution_s: float = 10.0,
        retention_s: float = 3600.0,
        max_series: int = 20_000,
    ) -> None:
        self.started = started
        self.resolution_s = resolution_s
        self.retention_s = retention_s
        self.max_series = max_series
        self.dropped = 0
        """Edge increases not kept because ``max_series`` edges already were."""
        self._slots: dict[EdgeKey, deque[tuple[int, Counts]]] = {}
        self._reporters: dict[str, _Reporter] = {}
        self._expired_at = -math.inf

    def record(
        self, reporter: str, started_at: datetime, edges: Mapping[EdgeKey, Counts], now: float
    ) -> None:
        """Take one report of ``reporter`` (an instance id): its cumulative counters."""
        self._expire(now)
        last = self._reporters.get(reporter)
        if last is not None and last.started_at != started_at:
            last = None  # the proxy restarted: its counters start from zero again
            restarted = True
        else:
            restarted = False
        first_sight = last is None and not restarted
        counts_from_zero = started_at.timestamp() >= self.started
        slot = int(now // self.resolution_s)
        for key, after in edges.items():
            before = last.edges.get(key) if last is not None else None
            if before is None and first_sight and not counts_from_zero:
                continue  # its counts so far are from before this series began
            delta = increase(before, after)
            if not delta.empty():
                self._add(key, slot, delta)
        self._reporters[reporter] = _Reporter(started_at, now, dict(edges))

    def forget(self, reporter: str) -> None:
        """Drop a reporter's last counters (it deregistered); its traffic stays."""
        self._reporters.pop(reporter, None)

    def _add(self, key: EdgeKey, slot: int, delta: Counts) -> None:
        slots = self._slots.get(key)
        if slots is None:
            if len(self._slots) >= self.max_series:
                self.dropped += 1
                return
            slots = self._slots[key] = deque()
        if slots and slots[-1][0] == slot:
            slots[-1][1].add(delta)
        else:
            slots.append((slot, delta))

    def _expire(self, now: float) -> None:
        """Drops what is past the retention; at most once a slot, since it reads every
        series and reports arrive many times a second in a large mesh."""
        if now - self._expired_at < self.resolution_s:
            return
        self._expired_at = now
        oldest = int((now - self.retention_s) // self.resolution_s)
        for key in [k for k, slots in self._slots.items() if slots[-1][0] < oldest]:
            del self._slots[key]
        for slots in self._slots.values():
            while slots and slots[0][0] < oldest:
                slots.popleft()
        quiet = now - self.retention_s
        for reporter in [r for r, last in self._reporters.items() if last.seen_at < quiet]:
            del self._reporters[reporter]

    def open_connections(self, now: float) -> Iterator[tuple[EdgeKey, int]]:
        """Each reporter's connections open now per edge (opened minus closed, as of its
        latest report), of the reporters heard from in the last three slots."""
        recent = now - 3 * self.resolution_s
        for last in self._reporters.values():
            if last.seen_at < recent:
                continue
            for key, counts in last.edges.items():
                open_now = counts.tcp.get("opened", 0) - counts.tcp.get("closed", 0)
                if open_now > 0:
                    yield key, open_now

    def window(self, now: float, seconds: float) -> Iterator[tuple[EdgeKey, Counts]]:
        """Each edge's traffic in the last ``seconds`` (whole slots, the current one too)."""
        first = math.floor((now - seconds) / self.resolution_s) + 1
        for key, slots in self._slots.items():
            total = Counts()
            for slot, counts in reversed(slots):
                if slot < first:
                    break
                total.add(counts)
            if not total.empty():
                yield key, total
