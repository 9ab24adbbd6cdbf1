"""Fixtures shared by every test directory: registry databases of both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dbs import BACKENDS, database


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty registry database: once on SQLite, once on PostgreSQL."""
    with database(request.param, tmp_path) as url:
        yield url
