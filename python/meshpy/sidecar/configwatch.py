"""Watches this sidecar's snapshot on the control plane, applies each new one, and acks it.

A long-poll with ``If-None-Match``: the control plane answers as soon as the snapshot
differs from the one the proxy runs, else with 304 when the wait ends. A snapshot the core
rejects (invalid, or naming a listener it cannot bind) is acked with its error
(``meshpy proxy status`` shows it) and the proxy keeps serving the previous one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

from meshpy import _core
from meshpy.sidecar.backoff import Backoff
from meshpy.sidecar.controlplane import ControlPlaneClient, ControlPlaneError

__all__ = ["ConfigWatcher", "SnapshotTarget"]

log = logging.getLogger("meshpy.sidecar.config")

WAIT_S = 30
"""How long the control plane may hold a poll; the client waits a little longer."""


class SnapshotTarget(Protocol):
    """What the watcher feeds: the proxy core's ``apply``."""

    def apply(self, snapshot_json: str) -> int: ...


@dataclass
class ConfigWatcher:
    """Keeps ``proxy`` on the current snapshot of instance ``instance``."""

    client: ControlPlaneClient
    proxy: SnapshotTarget
    instance: str
    outbound_port: int
    upstreams: str = ""
    """``payment-db:5433,...``: local TCP ports for services (the config endpoint's query)."""
    backoff: Backoff = field(default_factory=Backoff)
    etag: str | None = None
    version: int | None = None
    """Version of the snapshot the proxy runs; None until the first one is applied."""
    on_applied_body: Callable[[str], None] | None = None
    """Called with each snapshot the proxy applied (to save it)."""
    _unsent_ack: dict[str, object] | None = None

    def follow(self, instance: str) -> None:
        """Watch another instance id (the sidecar registered again): fetch its snapshot anew."""
        self.instance = instance
        self.etag = None
        self._unsent_ack = None

    def poll_once(self, wait_s: float = WAIT_S) -> bool:
        """One long-poll; True when a new snapshot was applied. Raises ControlPlaneError."""
        self._send_ack()
        path = f"/api/v1/proxies/{quote(self.instance)}/config"
        headers = {"If-None-Match": f'"{self.etag}"'} if self.etag else {}
        query = {"wait": f"{wait_s:g}s", "outbound_port": str(self.outbound_port)}
        if self.upstreams:
            query["upstreams"] = self.upstreams
        answer = self.client.request(
            "GET",
            path,
            query=query,
            headers=headers,
            timeout=wait_s + 10,
            ok=(200, 304),
        )
        if answer.status == 304:
            return False
        etag = answer.headers.get("etag", "").strip('"')
        version = int(answer.headers.get("x-meshpy-version", "0"))
        error = None
        body = answer.body.decode()
        try:
            self.proxy.apply(body)
        except (_core.ConfigError, _core.BindError) as err:
            error = str(err)
            log.error("snapshot %d rejected: %s", version, error)
        # The ETag moves on either way: a rejected snapshot is not fetched again and again.
        self.etag = etag or None
        if error is None:
            self.version = version
            log.info("applied config version %d", version)
            if self.on_applied_body is not None:
                self.on_applied_body(body)
        # Kept until sent: an ack lost to a control plane hiccup goes with the next poll.
        self._unsent_ack = {"version": version, "etag": etag or "none", "error": error}
        self._send_ack()
        return error is None

    def _send_ack(self) -> None:
        if self._unsent_ack is not None:
            path = f"/api/v1/proxies/{quote(self.instance)}/ack"
            self.client.request("PUT", path, body=self._unsent_ack)
            self._unsent_ack = None

    def run(self, stop: threading.Event, on_applied: Callable[[int], None] | None = None) -> None:
        """Poll until ``stop`` is set, backing off while the control plane is away."""
        while not stop.is_set():
            try:
                applied = self.poll_once()
            except ControlPlaneError as err:
                if stop.is_set():
                    return
                delay = self.backoff.next(err.retry_after or 0.0)
                log.warning("config watch failed (%s); next try in %.1fs", err, delay)
                stop.wait(delay)
                continue
            self.backoff.reset()
            if applied and on_applied is not None and self.version is not None:
                on_applied(self.version)
