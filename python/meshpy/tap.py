"""Live taps through the control plane: the admin ``/tap`` streams of a service's sidecars,
merged into one stream of Server-Sent Events, and what ``meshpy top`` makes of them.

Each sidecar rate-limits its own tap (the service's ``max_rps`` split between its
instances); the merge enforces ``max_rps`` once more over all of them. Every wait has a
limit: connecting, each read (the proxy writes a line every second), and the whole tap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "GRACE_S",
    "HEARTBEAT_S",
    "MAX_RPS",
    "PathStats",
    "TapParams",
    "Target",
    "TokenBucket",
    "merge",
    "parse_sse",
    "per_instance_rps",
    "sse",
    "summarise",
]

MAX_RPS = 1000
"""The highest rate a tap may ask for, per service (as the proxies allow per tap)."""
HEARTBEAT_S = 5.0
"""An SSE comment is sent this often without events, so a client that left is noticed."""
GRACE_S = 5.0
"""How long past its duration a tap waits for the proxies' last lines."""
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
"""The proxies write a line (maybe empty) every second: five without one is a dead tap."""
QUEUE = 1024
"""Events waiting to be sent to the client, at most; beyond, dropped and counted."""


@dataclass(frozen=True)
class Target:
    """A sidecar to tap: its instance id and admin address (``IP:PORT``)."""

    instance: str
    admin: str


@dataclass(frozen=True)
class TapParams:
    """What a tap asks each proxy for (``GET /tap``'s query), and for how long."""

    path: str | None = None
    method: str | None = None
    direction: str | None = None
    max_rps: int = 10
    headers: bool = False
    bodies: bool = False
    duration_s: int = 60

    def query(self, instances: int) -> dict[str, str]:
        """The query of one proxy's ``/tap`` among ``instances``."""
        query = {
            "max_rps": str(per_instance_rps(self.max_rps, instances)),
            "duration": str(self.duration_s),
            "headers": "1" if self.headers else "0",
            "bodies": "1" if self.bodies else "0",
        }
        for key, value in (
            ("path", self.path),
            ("method", self.method),
            ("direction", self.direction),
        ):
            if value is not None:
                query[key] = value
        return query


def per_instance_rps(max_rps: int, instances: int) -> int:
    """Each proxy's share of ``max_rps`` (at least 1; rounded up, as the merge enforces
    the total again)."""
    return max(1, math.ceil(max_rps / max(1, instances)))


class TokenBucket:
    """At most ``rate`` a second on average, and ``rate`` at once."""

    def __init__(self, rate: float, now: float | None = None) -> None:
        self.rate = max(1.0, rate)
        self.tokens = self.rate
        self.last = time.monotonic() if now is None else now

    def take(self, now: float | None = None) -> bool:
        """Take a token if there is one."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.rate, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = max(self.last, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def sse(event: str, data: Mapping[str, Any]) -> bytes:
    """One Server-Sent Event: its name and a JSON document on one ``data:`` line."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {text}\n\n".encode()


def parse_sse(lines: Iterable[str]) -> Iterable[tuple[str, dict[str, Any]]]:
    """``(event, data)`` for each event of an SSE stream's lines; comments are skipped."""
    event = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


@dataclass
class _Totals:
    events: int = 0
    limited: int = 0
    dropped: int = 0
    failed: int = 0


async def _pump(
    client: httpx.AsyncClient,
    target: Target,
    query: dict[str, str],
    queue: asyncio.Queue[tuple[str, dict[str, Any]]],
    totals: _Totals,
) -> None:
    """Puts one proxy's events on ``queue`` until its tap ends, then ``("done", ...)``."""
    import httpx

    try:
        async with client.stream("GET", f"http://{target.admin}/tap", params=query) as answer:
            if answer.status_code != 200:
                text = (await answer.aread())[:300].decode(errors="replace").strip()
                totals.failed += 1
                reason = f"{answer.status_code}: {text}"
                queue.put_nowait(("error", {"instance": target.instance, "reason": reason}))
                return
            queue.put_nowait(("instance", {"instance": target.instance, "admin": target.admin}))
            async for line in answer.aiter_lines():
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                if event.get("type") == "end":
                    totals.limited += int(event.get("limited") or 0)
                    totals.dropped += int(event.get("dropped") or 0)
                    return
                if event.get("type") != "request":
                    continue
                if queue.qsize() >= QUEUE:
                    totals.dropped += 1
                    continue
                event["instance"] = target.instance
                queue.put_nowait(("request", event))
    except httpx.HTTPError as exc:
        totals.failed += 1
        reason = str(exc) or type(exc).__name__
        queue.put_nowait(("error", {"instance": target.instance, "reason": reason}))
    finally:
        queue.put_nowait(("done", {"instance": target.instance}))


async def merge(
    targets: list[Target],
    params: TapParams,
    *,
    client: httpx.AsyncClient | None = None,
) -> AsyncIterator[bytes]:
    """The SSE stream of a tap of ``targets``: ``start``, ``instance`` (each proxy tapped)
    or ``error`` (each that could not be), ``request`` events, and a last ``end`` with the
    totals; ``: keep-alive`` comments between. Ends when every proxy's tap has ended, or
    ``GRACE_S`` after the duration; the proxies' taps close with it."""
    import httpx

    if client is None:
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        client = httpx.AsyncClient(timeout=timeout, trust_env=False)
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
    totals = _Totals()
    query = params.query(len(targets))
    tasks = [asyncio.create_task(_pump(client, t, query, queue, totals)) for t in targets]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + params.duration_s + GRACE_S
    bucket = TokenBucket(params.max_rps)
    done = 0
    try:
        yield sse(
            "start",
            {
                "instances": [t.instance for t in targets],
                "max_rps": params.max_rps,
                "duration_s": params.duration_s,
            },
        )
        while done < len(targets):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                kind, data = await asyncio.wait_for(queue.get(), min(HEARTBEAT_S, remaining))
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if kind == "done":
                done += 1
                continue
            if kind == "request":
                if not bucket.take():
                    totals.limited += 1
                    continue
                totals.events += 1
            yield sse(kind, data)
        yield sse(
            "end",
            {
                "events": totals.events,
                "limited": totals.limited,
                "dropped": totals.dropped,
                "failed": totals.failed,
            },
        )
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()


@dataclass
class PathStats:
    """What ``meshpy top`` shows of one (method, path): count, successes, latency."""

    method: str
    path: str
    count: int = 0
    success: int = 0
    best_ms: float = math.inf
    worst_ms: float = 0.0
    last_ms: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, status: int, latency_ms: float) -> None:
        """Counts one response."""
        self.count += 1
        if status < 500:
            self.success += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.best_ms = min(self.best_ms, latency_ms)
        self.worst_ms = max(self.worst_ms, latency_ms)
        self.last_ms = latency_ms

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON (``-o json``)."""
        return {
            "method": self.method,
            "path": self.path,
            "count": self.count,
            "success": self.success,
            "success_rate": self.success / self.count if self.count else None,
            "latency_ms": {
                "best": self.best_ms if self.count else None,
                "worst": self.worst_ms if self.count else None,
                "last": self.last_ms if self.count else None,
            },
            "status_codes": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def summarise(rows: dict[tuple[str, str], PathStats], event: Mapping[str, Any]) -> None:
    """Adds a tap's ``request`` event to the rows by (method, path)."""
    method, path = str(event.get("method", "")), str(event.get("path", ""))
    row = rows.get((method, path))
    if row is None:
        row = rows[(method, path)] = PathStats(method, path)
    row.add(int(event.get("status") or 0), float(event.get("latency_ms") or 0.0))
