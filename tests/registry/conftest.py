"""The registry's database for its tests: migrated to the newest schema, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshpy.registry import migrations
from meshpy.registry.db import Database


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A database at ``db_url``, upgraded to the newest migration; disposed after the test."""
    database = Database(db_url)
    migrations.upgrade(database)
    yield database
    database.dispose()
