"""One sidecar: the proxy core in this process, registered, with its identity and config.

``Sidecar.start`` starts the core with no listeners, registers the instance, then runs
three threads: the identity agent (certificates), the config watcher (snapshots, acks)
and the registrar (lease, health). The instance reports passing, and so gets traffic,
only once the core is ready (it has a certificate and a snapshot). ``Sidecar.stop``
leaves in order: deregister (no new traffic), drain in-flight requests, stop the core.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from meshpy import _core
from meshpy.sidecar.configwatch import ConfigWatcher
from meshpy.sidecar.controlplane import ControlPlaneClient, ControlPlaneError
from meshpy.sidecar.identity import IdentityAgent
from meshpy.sidecar.registration import InstanceSpec, Registrar

__all__ = ["Sidecar", "SidecarOptions", "free_port"]

log = logging.getLogger("meshpy.sidecar")


@dataclass(frozen=True, kw_only=True)
class SidecarOptions:
    """Who the sidecar is and where it listens; ports 0 are picked free."""

    server: str
    token: str
    namespace: str = "default"
    service: str
    version: str | None = None
    app_port: int | None = None
    address: str = "127.0.0.1"
    """The address other sidecars reach this one at."""
    inbound_port: int = 0
    outbound_port: int = 0
    admin: str | None = "127.0.0.1:0"
    zone: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    workers: int = 1


def free_port(host: str) -> int:
    """A port free on ``host`` now (the OS's pick); another process could still take it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Sidecar:
    """The proxy core plus registration, identity and config, for one instance."""

    def __init__(
        self,
        options: SidecarOptions,
        *,
        app_healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        self.options = options
        self.inbound_port = options.inbound_port or free_port(options.address)
        self.outbound_port = options.outbound_port or free_port("127.0.0.1")
        bootstrap: dict[str, object] = {"workers": options.workers}
        if options.admin:
            bootstrap["admin"] = options.admin
        self.proxy = _core.Proxy(json.dumps(bootstrap))
        self.client = ControlPlaneClient(options.server, options.token)
        self._app_healthy = app_healthy
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.registrar = Registrar(
            self.client,
            InstanceSpec(
                namespace=options.namespace,
                service=options.service,
                address=options.address,
                inbound_port=self.inbound_port,
                app_port=options.app_port,
                version=options.version,
                zone=options.zone,
                labels=dict(options.labels),
            ),
            ready=self.ready,
        )
        self.identity = IdentityAgent(self.client, self.proxy, options.namespace, options.service)
        self.config = ConfigWatcher(self.client, self.proxy, "", self.outbound_port)

    def start(self, register_timeout: float = 30.0) -> dict[str, str]:
        """Start the core and register; returns the core's bound addresses.

        Raises ControlPlaneError when the control plane refused or could not be reached
        within ``register_timeout``.
        """
        addresses = self.proxy.start()
        instance = self._register(register_timeout)
        self.identity.instance = instance
        self.config.follow(instance)
        self._spawn("identity", lambda: self.identity.run(self._stop, self._became_ready))
        self._spawn("config", lambda: self.config.run(self._stop, self._became_ready))
        self._spawn("lease", lambda: self.registrar.run(self._stop, self._registered_again))
        return addresses

    def ready(self) -> bool:
        """Whether the instance can take traffic: core ready (identity, config) and app healthy."""
        return self.config.version is not None and self.proxy.ready() and self._app_healthy()

    def wait_ready(self, timeout: float) -> bool:
        """Block until ``ready()`` or ``timeout`` seconds; returns ``ready()``."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() >= deadline or self._stop.wait(0.05):
                return self.ready()
        return True

    def outbound_url(self) -> str:
        """The outbound listener as the app's ``HTTP_PROXY``."""
        return f"http://127.0.0.1:{self.outbound_port}"

    def stop(self, drain_s: float = 10.0) -> None:
        """Deregister, drain in-flight requests for up to ``drain_s``, stop the core."""
        self._stop.set()
        self.registrar.poke()
        self.registrar.deregister()
        self.proxy.shutdown(drain_s)
        for thread in self._threads:
            # The config long-poll may sit in a socket read; it is a daemon thread.
            thread.join(timeout=1.0)

    def _register(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                instance = self.registrar.register()
            except ControlPlaneError as err:
                delay = self.registrar.backoff.next(err.retry_after or 0.0)
                if not err.retryable or time.monotonic() + delay > deadline:
                    raise
                log.warning("registration failed (%s); next try in %.1fs", err, delay)
                if self._stop.wait(delay):
                    raise
                continue
            self.registrar.backoff.reset()
            return instance

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"meshpy-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _became_ready(self, _: object) -> None:
        # Report health now rather than at the next renewal: traffic starts sooner.
        if self.ready():
            self.registrar.poke()

    def _registered_again(self, instance: str) -> None:
        self.identity.instance = instance
        self.config.follow(instance)
