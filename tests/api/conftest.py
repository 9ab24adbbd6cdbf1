"""Fixtures of the API tests: a live app per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshpy.settings import Settings
from tests.api.live import LiveServer, start

StartServer = Callable[..., LiveServer]


@pytest.fixture
def start_server(db_url: str, tmp_path: Path) -> Iterator[StartServer]:
    """Start live servers on the test's database, with settings overridden as given."""
    started: list[LiveServer] = []

    def run(**overrides: Any) -> LiveServer:
        home = tmp_path / f"home{len(started)}"
        settings = Settings(home=home, db_url=db_url, **overrides)
        server = start(settings)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


@pytest.fixture
def api(start_server: StartServer) -> LiveServer:
    """A live server with the default settings."""
    return start_server()
