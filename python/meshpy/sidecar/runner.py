"""One sidecar: the proxy core in this process, registered, with its identity, config and app.

``Sidecar.start`` starts the core, registers the instance, then runs its threads: the
identity agent (certificates), the config watcher (snapshots, acks), the registrar
(lease, health), and with an app, its supervisor and health check. The instance reports
passing, and so gets traffic, only once the core is ready (it has a certificate and a
snapshot) and the app answers.

With a state directory, the last snapshot and certificate are saved; a sidecar started
while the control plane is away serves with them and reconnects by itself.

``Sidecar.stop`` leaves in order: deregister (no new traffic), keep serving while the
other sidecars learn it (``drain_delay_s``), wait for the app's in-flight requests, stop
the app, stop the core.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from meshpy import _core
from meshpy.addresses import reachable_admin
from meshpy.sidecar.configwatch import ConfigWatcher
from meshpy.sidecar.controlplane import ControlPlaneClient, ControlPlaneError
from meshpy.sidecar.events import EventLog
from meshpy.sidecar.health import HealthCheck
from meshpy.sidecar.identity import IdentityAgent
from meshpy.sidecar.inbound import inbound_stats
from meshpy.sidecar.registration import Health, InstanceSpec, Registrar
from meshpy.sidecar.state import SavedPorts, StateDir
from meshpy.sidecar.supervisor import AppSpec, AppSupervisor
from meshpy.sidecar.traceexport import WithExports, exports

__all__ = ["PortReservation", "Sidecar", "SidecarOptions", "free_port"]

log = logging.getLogger("meshpy.sidecar")

LOCAL_APP_CLUSTER = "local-app"
"""The snapshot's cluster of the sidecar's own app (as ``meshpy.snapshot`` names it)."""


@dataclass(frozen=True, kw_only=True)
class SidecarOptions:
    """Who the sidecar is, where it listens, and its app; ports 0 are picked free."""

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
    access_log: str | None = None
    """Where the proxy writes a JSON line per request: ``-`` (stderr) or a file."""
    istio_metrics: bool = False
    """Whether the proxy also exports Istio's standard metrics."""
    zone: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    app: AppSpec | None = None
    health: str | None = None
    """How the app is checked: an HTTP path ("/healthz"), "tcp", or None (no check)."""
    state_dir: str | None = None
    drain_delay_s: float = 2.0
    protocol: str | None = None
    """``http`` or ``tcp``: what the service speaks (set with its first instance)."""
    upstreams: dict[str, int] = field(default_factory=dict)
    """``{"payment-db": 5433}``: a local TCP port for the app to reach each service."""
    events: str | None = None
    """A file the sidecar appends its events to, as JSON lines (``sidecar.events``)."""


def free_port(host: str) -> int:
    """A port free on ``host`` now (the OS's pick); another process could still take it.

    For a port the proxy core will listen on, hold a ``PortReservation`` instead."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class PortReservation:
    """A port held for a listener that the proxy core binds later (the sidecar must name
    its ports, to register them, before its config arrives).

    The port is held by a socket bound to it with SO_REUSEADDR that never listens: the
    kernel gives the port to no other ``bind``, yet the core, which also binds with
    SO_REUSEADDR, can bind and listen on it (Linux refuses a shared port only when the
    other socket listens). Picking a free port and closing it instead would leave a
    window in which another process takes it.
    """

    def __init__(self, host: str) -> None:
        self._sock = socket.socket(_family(host), socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, 0))
        except OSError:
            self._sock.close()
            raise
        self.port = int(self._sock.getsockname()[1])

    def release(self) -> None:
        """Give the port back (its listener, if any, keeps it)."""
        self._sock.close()


class Sidecar:
    """The proxy core plus registration, identity, config and the app, for one instance."""

    def __init__(
        self, options: SidecarOptions, *, base_env: Mapping[str, str] | None = None
    ) -> None:
        self.options = options
        self.events = EventLog(options.events)
        self.state = StateDir(Path(options.state_dir)) if options.state_dir else None
        saved = self.state.ports() if self.state else None
        # Ports picked here are held until the sidecar stops (see PortReservation).
        self._reservations: list[PortReservation] = []
        self.inbound_port = options.inbound_port or (saved.inbound_port if saved else 0)
        self.inbound_port = self.inbound_port or self._reserve(options.address)
        self.outbound_port = options.outbound_port or (saved.outbound_port if saved else 0)
        self.outbound_port = self.outbound_port or self._reserve("127.0.0.1")
        app_port = options.app_port or (saved.app_port if saved else None)
        # A port picked for the app is held until just before the app starts: the app
        # binds it without SO_REUSEADDR, perhaps, so it can't be held any longer.
        self._app_reservation: PortReservation | None = None
        if app_port is None and options.app is not None:
            self._app_reservation = PortReservation("127.0.0.1")
            app_port = self._app_reservation.port
        self.app_port = app_port
        bootstrap: dict[str, object] = {"workers": options.workers}
        if options.admin:
            bootstrap["admin"] = options.admin
        if options.access_log:
            bootstrap["access_log"] = options.access_log
        if options.istio_metrics:
            bootstrap["istio_metrics"] = True
        self.proxy = _core.Proxy(json.dumps(bootstrap))
        # The inbound counters start from zero here: a restart shows as a new started_at.
        started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.client = ControlPlaneClient(options.server, options.token)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.health = self._health_check()
        self.app = (
            AppSupervisor(
                options.app, self.app_environment(base_env or {}), on_exit=self._app_exited
            )
            if options.app is not None
            else None
        )
        self.registrar = Registrar(
            self.client,
            InstanceSpec(
                namespace=options.namespace,
                service=options.service,
                address=options.address,
                inbound_port=self.inbound_port,
                app_port=self.app_port,
                version=options.version,
                zone=options.zone,
                labels=dict(options.labels),
                protocol=options.protocol,
            ),
            health=self._health,
            instance=saved.instance if saved else None,
            stats=lambda: inbound_stats(self.proxy, started_at),
        )
        self.identity = IdentityAgent(self.client, self.proxy, options.namespace, options.service)
        # Snapshots reach the proxy with this sidecar's trace receivers added.
        self.snapshots = WithExports(
            self.proxy,
            exports(options.server, options.token, os.environ),
        )
        self.config = ConfigWatcher(
            self.client,
            self.snapshots,
            "",
            self.outbound_port,
            upstreams=",".join(f"{name}:{port}" for name, port in options.upstreams.items()),
        )
        if self.state is not None:
            self.identity.on_installed = self.state.save_identity
            self.config.on_applied_body = self.state.save_snapshot
        self.serving_saved_config = False

    def start(self, register_timeout: float = 30.0) -> dict[str, str]:
        """Start the core (from saved state if any), the app, and register.

        Raises ControlPlaneError when the control plane refused, or could not be reached
        within ``register_timeout`` and there is no saved snapshot to serve with.
        """
        self._load_saved()
        addresses = self.proxy.start()
        if "admin" in addresses:
            self.registrar.spec = dataclasses.replace(
                self.registrar.spec,
                admin_address=reachable_admin(addresses["admin"], self.options.address),
            )
        if self._app_reservation is not None:
            self._app_reservation.release()
            self._app_reservation = None
        if self.app is not None:
            self.app.start()
            self._spawn("app", lambda: self.app.run(self._stop) if self.app else None)
        if self.health is not None:
            self._spawn("health", lambda: self.health.run(self._stop) if self.health else None)
        try:
            instance = self._register(0.0 if self.serving_saved_config else register_timeout)
        except ControlPlaneError as err:
            if not (self.serving_saved_config and err.retryable):
                self.stop(drain_s=0.0)
                raise
            log.warning("control plane unreachable (%s): serving the saved config", err)
        else:
            self.registrar.announced = instance
            self._follow(instance)
        self._spawn("identity", lambda: self.identity.run(self._stop, self._became_ready))
        self._spawn("config", lambda: self.config.run(self._stop, self._became_ready))
        self._spawn("lease", lambda: self.registrar.run(self._stop, self._follow))
        return addresses

    def ready(self) -> bool:
        """Whether the instance can take traffic: core ready (identity, config), app healthy."""
        if self.config.version is None and not self.serving_saved_config:
            return False
        if self.health is not None and not self.health.healthy:
            return False
        return bool(self.proxy.ready())

    def app_finished(self) -> bool:
        """Whether the app exited and stays down (its restart policy says so)."""
        return self.app is not None and self.app.finished.is_set()

    def _health(self) -> Health:
        if self.app is not None and self.app.exited():
            return "critical"
        return "passing" if self.ready() else "failing"

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

    def app_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """The app's environment: ``base`` without the join token, plus where to listen
        (``PORT``) and how to call other services (``HTTP_PROXY``, ``MESHPY_OUTBOUND``)."""
        env = {k: v for k, v in base.items() if k != "MESHPY_TOKEN"}
        outbound = self.outbound_url()
        control_plane = urlsplit(self.options.server).hostname or ""
        no_proxy = ",".join(h for h in ("localhost", "127.0.0.1", "::1", control_plane) if h)
        env.update(
            HTTP_PROXY=outbound,
            http_proxy=outbound,
            MESHPY_OUTBOUND=outbound,
            NO_PROXY=no_proxy,
            no_proxy=no_proxy,
            MESHPY_SERVICE=self.options.service,
            MESHPY_NAMESPACE=self.options.namespace,
        )
        if self.app_port is not None:
            env["PORT"] = str(self.app_port)
        if self.options.version:
            env["MESHPY_VERSION"] = self.options.version
        return env

    def stop(self, drain_s: float = 10.0) -> None:
        """Deregister, let peers notice, drain the app's requests, stop the app and the core."""
        deadline = time.monotonic() + drain_s
        self._stop.set()
        self.registrar.poke()
        if self.registrar.instance is not None:
            self.registrar.deregister()
            # Peers route by their own copy of the endpoints: keep serving until they
            # have had time to drop this instance.
            time.sleep(max(0.0, min(self.options.drain_delay_s, deadline - time.monotonic())))
        self._wait_app_idle(deadline)
        if self.app is not None:
            self.app.stop()
        self.proxy.shutdown(max(0.0, deadline - time.monotonic()))
        for reservation in self._reservations:
            reservation.release()
        if self._app_reservation is not None:  # stopped before the app started
            self._app_reservation.release()
        for thread in self._threads:
            # The config long-poll may sit in a socket read; it is a daemon thread.
            thread.join(timeout=1.0)

    def _reserve(self, host: str) -> int:
        reservation = PortReservation(host)
        self._reservations.append(reservation)
        return reservation.port

    def _wait_app_idle(self, deadline: float) -> None:
        """Until no request to the app is in flight, or the deadline."""
        while time.monotonic() < deadline:
            cluster = self.proxy.stats().get("clusters", {}).get(LOCAL_APP_CLUSTER)
            endpoints = cluster["endpoints"] if cluster else []
            if all(e["in_flight"] == 0 for e in endpoints):
                return
            time.sleep(0.05)

    def _load_saved(self) -> None:
        if self.state is None:
            return
        saved_identity = self.state.identity()
        if saved_identity is not None:
            try:
                self.proxy.set_identity(
                    saved_identity.chain, saved_identity.key, saved_identity.roots
                )
            except _core.MeshpyError as err:
                log.info("saved certificate not usable (%s): asking the CA", err)
        snapshot = self.state.snapshot()
        if snapshot is not None:
            try:
                self.snapshots.apply(snapshot)
                self.serving_saved_config = True
            except _core.MeshpyError as err:
                log.warning("saved config not usable (%s): waiting for the control plane", err)

    def _register(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.registrar.renew()
            except ControlPlaneError as err:
                delay = self.registrar.backoff.next(err.retry_after or 0.0)
                if not err.retryable or time.monotonic() + delay > deadline:
                    raise
                log.warning("registration failed (%s); next try in %.1fs", err, delay)
                if self._stop.wait(delay):
                    raise
                continue
            self.registrar.backoff.reset()
            assert self.registrar.instance is not None
            return self.registrar.instance

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"meshpy-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _health_check(self) -> HealthCheck | None:
        if self.options.health is None or self.app_port is None:
            return None
        path = None if self.options.health == "tcp" else self.options.health
        return HealthCheck(self.app_port, path, on_change=self._health_changed)

    def _app_exited(self, code: int, restarting: bool) -> None:
        self.events.emit("app_exited", code=code, restarting=restarting)
        if self.health is not None:
            self.health.mark_down()
        # Report at once: the instance must stop getting traffic now, not at the next renewal.
        self.registrar.poke()

    def _health_changed(self, _: bool) -> None:
        # The app started or stopped answering: report it now, not at the next renewal.
        self.registrar.poke()

    def _became_ready(self, _: object) -> None:
        # Report health now rather than at the next renewal: traffic starts sooner.
        if self.ready():
            self.registrar.poke()

    def _follow(self, instance: str) -> None:
        """After a (re-)registration: certificates and config for this instance id."""
        spec = self.registrar.spec
        self.events.emit(
            "registered", instance=instance, namespace=spec.namespace, service=spec.service
        )
        self.identity.instance = instance
        self.config.follow(instance)
        if self.state is not None:
            self.state.save_ports(
                SavedPorts(instance, self.inbound_port, self.outbound_port, self.app_port)
            )
