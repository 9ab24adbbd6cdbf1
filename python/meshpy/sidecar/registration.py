"""Registers this sidecar's instance and keeps its lease, reporting whether it can serve.

The instance reports what ``health()`` says: ``passing`` once the proxy has its
identity and config and the app answers (only then does it get traffic), ``failing``
otherwise, ``critical`` while the app is not running at all. When the
control plane has forgotten the instance (404 on renewal: its lease ran out while the
control plane was unreachable) it registers again, under a new id.

Each renewal also carries ``stats()``, a cumulative summary of the inbound listener (see
``meshpy.sidecar.inbound``), from which the control plane serves per-service stats. A
control plane too old to know that field refuses the body (400 or 422): the renewal is
sent again without it, and stats are not sent any more.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from meshpy.sidecar.backoff import Backoff
from meshpy.sidecar.controlplane import ControlPlaneClient, ControlPlaneError, instance_path

__all__ = ["Health", "InstanceSpec", "Registrar"]

Health = Literal["passing", "failing", "critical"]

log = logging.getLogger("meshpy.sidecar.registration")


@dataclass(frozen=True)
class InstanceSpec:
    """What the sidecar registers."""

    namespace: str
    service: str
    address: str
    inbound_port: int
    app_port: int | None = None
    admin_address: str | None = None
    """The admin listener's ``IP:PORT`` (its /metrics), once the proxy has bound it."""
    version: str | None = None
    zone: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    protocol: str | None = None

    def body(self) -> dict[str, Any]:
        """The registration request body."""
        extra: dict[str, Any] = {"protocol": self.protocol} if self.protocol else {}
        if self.admin_address is not None:
            extra["admin_address"] = self.admin_address
        return extra | {
            "version": self.version,
            "labels": self.labels,
            "address": self.address,
            "inbound_port": self.inbound_port,
            "app_port": self.app_port,
            "zone": self.zone,
        }


@dataclass
class Registrar:
    """Registers ``spec``, renews its lease, deregisters it on the way out."""

    client: ControlPlaneClient
    spec: InstanceSpec
    health: Callable[[], Health]
    backoff: Backoff = field(default_factory=Backoff)
    instance: str | None = None
    announced: str | None = None
    """The instance id last passed to ``on_registered``."""
    renew_every_s: float = 5.0
    stats: Callable[[], dict[str, Any] | None] | None = None
    """The inbound summary sent with each renewal (None: send none)."""
    _wake: threading.Event = field(default_factory=threading.Event)

    def poke(self) -> None:
        """Renew now rather than at the next interval (readiness changed, or stopping)."""
        self._wake.set()

    def register(self) -> str:
        """Register a new instance; returns its id. Raises ControlPlaneError."""
        path = instance_path(self.spec.namespace, self.spec.service)
        try:
            answer = self.client.request("POST", path, body=self.spec.body()).json()
        except ControlPlaneError as err:
            if err.status != 422 or self.spec.admin_address is None:
                raise
            # A control plane older than the field: register without it.
            log.warning("the control plane refused the admin address (%s); not sending it", err)
            self.spec = dataclasses.replace(self.spec, admin_address=None)
            answer = self.client.request("POST", path, body=self.spec.body()).json()
        self.instance = str(answer["id"])
        self.renew_every_s = float(answer.get("renew_every_s", self.renew_every_s))
        return self.instance

    def renew(self) -> None:
        """Renew the lease with the current health; re-register when the instance is gone."""
        if self.instance is None:
            self.register()
            return
        path = instance_path(self.spec.namespace, self.spec.service, self.instance) + "/lease"
        try:
            answer = self._send_renewal(path)
        except ControlPlaneError as err:
            if err.status != 404:
                raise
            log.warning("instance %s is no longer registered; registering again", self.instance)
            self.instance = None
            self.register()
            log.info("registered again as instance %s", self.instance)
            return
        self.renew_every_s = float(answer.get("renew_every_s", self.renew_every_s))

    def _send_renewal(self, path: str) -> Any:
        body: dict[str, Any] = {"health": self.health()}
        stats = self._read_stats()
        if stats is None:
            return self.client.request("PUT", path, body=body).json()
        try:
            return self.client.request("PUT", path, body=body | {"stats": stats}).json()
        except ControlPlaneError as err:
            if err.status not in (400, 422):
                raise
            log.warning("the control plane refused the inbound stats (%s); not sending them", err)
            self.stats = None
            return self.client.request("PUT", path, body=body).json()

    def _read_stats(self) -> dict[str, Any] | None:
        if self.stats is None:
            return None
        try:
            return self.stats()
        except Exception:
            log.exception("could not read the inbound stats")
            return None

    def run(self, stop: threading.Event, on_registered: Callable[[str], None]) -> None:
        """Renew until ``stop``; ``on_registered(id)`` after each (re-)registration."""
        while not stop.is_set():
            try:
                self.renew()
            except ControlPlaneError as err:
                if stop.is_set():
                    return
                delay = self.backoff.next(err.retry_after or 0.0)
                # Never wait so long that the lease runs out because of the backoff alone.
                delay = min(delay, self.renew_every_s)
                log.warning("lease renewal failed (%s); next try in %.1fs", err, delay)
                self._wake.wait(delay)
                self._wake.clear()
                continue
            self.backoff.reset()
            if self.instance is not None and self.instance != self.announced:
                self.announced = self.instance
                on_registered(self.instance)
            self._wake.wait(self.renew_every_s)
            self._wake.clear()

    def deregister(self, timeout: float = 5.0) -> None:
        """Remove the instance at once (graceful stop); best effort."""
        if self.instance is None:
            return
        path = instance_path(self.spec.namespace, self.spec.service, self.instance)
        try:
            self.client.request("DELETE", path, timeout=timeout, ok=(200, 204, 404))
        except ControlPlaneError as err:
            log.warning("could not deregister %s: %s (its lease will expire)", self.instance, err)
        self.instance = None
