"""Fixtures of the security suites: the proxy fixtures of the integration tests, and a backend
that can answer slowly, with a large body, or after reading an endless upload."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration.conftest import start_proxy
from tests.security import floodbackend
from tests.security.slowclients import raise_open_files_limit, start_backend, stop_process

__all__ = ["start_proxy"]


@dataclass(frozen=True)
class FloodBackend:
    """The floods' backend process (see ``floodbackend``) and the address it listens on."""

    address: str  # 127.0.0.1:port


@pytest.fixture
def flood_backend() -> Iterator[FloodBackend]:
    """A backend for floods in its own process, stopped by its PID after the test."""
    proc, address = floodbackend.start()
    try:
        yield FloodBackend(address)
    finally:
        stop_process(proc)


@pytest.fixture
def benign_backend() -> Iterator[FloodBackend]:
    """Another such backend, for the benign client alongside a flood: what the flood
    costs its own backend (hundreds of handler threads) is then not taken for harm
    the proxy did."""
    proc, address = floodbackend.start()
    try:
        yield FloodBackend(address)
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def slow_client_backend() -> Iterator[str]:
    """The slow-client attacks' backend (``slowclients backend``, its own process) for
    the module: ``127.0.0.1:port``; stopped by its PID after the module's tests."""
    raise_open_files_limit()  # hundreds of attacking connections, and the proxy inherits it
    proc, address = start_backend()
    yield address
    stop_process(proc)
