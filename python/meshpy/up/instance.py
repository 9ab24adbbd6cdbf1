"""One replica under ``meshpy up``: its sidecar process and what its events and admin endpoint say.

The sidecar's admin address, instance id, readiness and app exits come from its
``--events`` file (``meshpy.sidecar.events``), never from its log; the traffic into the
instance from its ``/metrics``, and its identity and inbound mTLS mode from ``/stats``.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshpy.sidecar.events import EventReader
from meshpy.up.meshfile import Replica
from meshpy.up.procs import Child
from meshpy.up.stats import Rates, Scrape, parse_metrics, rates

if TYPE_CHECKING:
    import httpx

__all__ = ["WINDOW_S", "Instance"]

WINDOW_S = 10.0
"""Rates are computed over about this many seconds."""


@dataclass
class Instance:
    """One replica: its sidecar process and what is known of it."""

    replica: Replica
    child: Child
    events: EventReader
    instance_id: str | None = None
    admin: str | None = None
    ready: bool = False
    state: str = "starting"
    restarts: int = 0
    exited: int | None = None
    """The sidecar's exit code, once it exited."""
    app_done: int | None = None
    """The app's exit code, once it exited for good (its restart policy says so)."""
    scrapes: deque[Scrape] = field(default_factory=lambda: deque(maxlen=64))
    identity: dict[str, Any] | None = None
    inbound_tls: str | None = None

    def read_events(self) -> None:
        """Learn from the events the sidecar reported since the last call."""
        for event in self.events.new_events():
            match event:
                case {"event": "addresses", "addresses": {"admin": str(admin)}}:
                    self.admin = admin
                case {"event": "registered", "instance": str(instance)}:
                    self.instance_id = instance
                case {"event": "ready"}:
                    self.ready = True
                case {"event": "not_ready"}:
                    self.ready = False
                case {"event": "app_exited", "code": int(code), "restarting": True}:
                    self.restarts += 1
                case {"event": "app_exited", "code": int(code), "restarting": False}:
                    self.app_done = code

    def window(self) -> Rates:
        """Rates over the last ``WINDOW_S`` seconds of scrapes."""
        if len(self.scrapes) < 2:
            return Rates()
        newest = self.scrapes[-1]
        oldest = next(s for s in self.scrapes if newest.at - s.at <= WINDOW_S)
        if oldest is newest:
            oldest = self.scrapes[-2]
        return rates(oldest, newest)

    def scrape(self, client: httpx.Client) -> None:
        """Keep a reading of the sidecar's /metrics, if it answers."""
        import httpx

        if self.admin is None or self.exited is not None:
            return
        try:
            answer = client.get(f"http://{self.admin}/metrics")
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            self.scrapes.append(parse_metrics(answer.text, time.monotonic()))

    def read_identity(self, client: httpx.Client) -> None:
        """Learn the sidecar's identity and inbound mTLS mode from its /stats, if it answers."""
        import httpx

        if self.admin is None or self.exited is not None:
            return
        with contextlib.suppress(httpx.HTTPError, ValueError):
            stats = client.get(f"http://{self.admin}/stats").json()
            self.identity = stats.get("identity")
            self.inbound_tls = (stats.get("listeners", {}).get("inbound") or {}).get("tls")
