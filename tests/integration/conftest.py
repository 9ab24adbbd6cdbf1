"""Fixtures that start real backends, `meshpy proxy run` and `meshpy server` processes, and stop
exactly those."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.backends import (
    HttpBackend,
    TcpEcho,
    start_h2c_backend,
    start_http_backend,
    start_tcp_echo,
)
from tests.integration.proxyproc import ProxyProcess, spawn, wait_ready
from tests.integration.serverproc import ServerProcess, wait_listening
from tests.integration.serverproc import spawn as spawn_server
from tests.integration.sidecars import spawn_sidecar, wait_sidecar_ready

StartProxy = Callable[..., ProxyProcess]


@pytest.fixture
def http_backend() -> Iterator[Callable[[str], HttpBackend]]:
    """Start HTTP backends by name; all are closed after the test."""
    started: list[HttpBackend] = []

    def start(name: str = "b1") -> HttpBackend:
        backend = start_http_backend(name)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.close()


@pytest.fixture
def h2c_backend() -> Iterator[Callable[[str], HttpBackend]]:
    """Start h2c (HTTP/2 prior knowledge) backends by name; all are closed after the test."""
    started: list[HttpBackend] = []

    def start(name: str = "h2") -> HttpBackend:
        backend = start_h2c_backend(name)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.close()


@pytest.fixture
def tcp_echo() -> Iterator[TcpEcho]:
    """A TCP echo server, closed after the test."""
    echo = start_tcp_echo()
    yield echo
    echo.close()


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[StartProxy]:
    """Start `meshpy proxy run` processes; each is stopped by its own PID after the test.

    ``start_proxy(config, ready=False)`` returns at once, for processes expected to fail.
    """
    started: list[ProxyProcess] = []

    def start(
        config: dict[str, Any] | str,
        *,
        ready: bool = True,
        name: str = "proxy.yaml",
        args: tuple[str, ...] = (),
    ) -> ProxyProcess:
        proc = spawn(tmp_path, config, name=name, args=args)
        started.append(proc)
        return wait_ready(proc) if ready else proc

    yield start
    for proc in started:
        proc.stop()


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start `meshpy server` processes; each is stopped by its own PID after the test.

    ``start_server(home, db_url=..., ready=False)`` returns at once, for servers expected
    to fail; otherwise it waits until the server answers /readyz.
    """
    started: list[ServerProcess] = []

    def start(
        home: Path | None = None,
        *,
        db_url: str | None = None,
        ready: bool = True,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> ServerProcess:
        server = spawn_server(home or tmp_path / "home", db_url=db_url, args=args, env=env)
        started.append(server)
        return wait_listening(server) if ready else server

    yield start
    for server in started:
        server.stop()


StartSidecar = Callable[..., ProxyProcess]

FAST_LEASES = {
    "MESHPY_LEASE_TTL": "3s",
    "MESHPY_HEALTH_THRESHOLD": "1",
    "MESHPY_REMOVAL_GRACE": "60s",
}
"""A control plane that notices dead instances in seconds, for tests with sidecars."""


@pytest.fixture
def start_sidecar(tmp_path: Path, server: ServerProcess) -> Iterator[StartSidecar]:
    """Start sidecars (``meshpy run``/``meshpy proxy run --service``) of the module's
    ``server`` fixture; after the test all are sent SIGTERM at once, then waited for.

    ``start_sidecar(service, *args, app=..., name=..., ready=False)`` returns without
    waiting for "ready".
    """
    started: list[ProxyProcess] = []

    def start(service: str, *args: str, ready: bool = True, **kwargs: Any) -> ProxyProcess:
        sidecar = spawn_sidecar(tmp_path, server, service, *args, **kwargs)
        started.append(sidecar)
        return wait_sidecar_ready(sidecar) if ready else sidecar

    yield start
    # Each drains for a while: in parallel, a test with ten sidecars stops as fast as one.
    for sidecar in started:
        sidecar.terminate()
    for sidecar in started:
        sidecar.stop()
