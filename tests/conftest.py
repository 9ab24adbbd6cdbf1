"""Fixtures shared by every test directory: registry databases of both backends; and the
attack suites marked ``alone``, as the tests are that judge timing under load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbs import BACKENDS, database


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The attack suites judge latency and memory with nothing else running: ``alone``."""
    security = Path(__file__).parent / "security"
    for item in items:
        if item.path.is_relative_to(security):
            item.add_marker(pytest.mark.alone)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty registry database: once on SQLite, once on PostgreSQL."""
    with database(request.param, tmp_path) as url:
        yield url
