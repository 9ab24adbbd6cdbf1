"""Fixtures of the identity tests: live servers whose CA runs on a settable clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshpy.settings import Settings
from tests.api.live import LiveServer, start
from tests.identity.pki import FakeClock

StartServer = Callable[..., LiveServer]

CERTIFICATES = "/api/v1/identity/certificates"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start_server(db_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[StartServer]:
    """Start live servers on the test's database (SQLite, then PostgreSQL)."""
    started: list[LiveServer] = []

    def run(**overrides: Any) -> LiveServer:
        home = overrides.pop("home", None) or tmp_path / f"home{len(started)}"
        server = start(Settings(home=home, db_url=db_url, **overrides), clock=clock)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server: StartServer) -> LiveServer:
    """A live server with the default settings."""
    return start_server()
