"""The Alembic scripts build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from meshpy.registry import migrations
from meshpy.registry.db import Database
from meshpy.registry.models import Base


def test_migrations_match_the_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert migrations.check(db).current is None
        migrations.upgrade(db)
        status = migrations.check(db)
        assert status.up_to_date
        assert status.known
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        migrations.upgrade(db)  # idempotent
        assert migrations.check(db).current == status.head
    finally:
        db.dispose()


def test_prepare_upgrades_sqlite_but_only_checks_postgres(db_url: str) -> None:
    db = Database(db_url)
    try:
        if db.dialect == "sqlite":
            before = migrations.prepare(db)
            assert before is not None
            assert before.current is None
            assert migrations.prepare(db) is None
        else:
            with pytest.raises(migrations.SchemaError, match=r"run `meshpy db upgrade --db URL`"):
                migrations.prepare(db)
            migrations.upgrade(db)
            assert migrations.prepare(db) is None
    finally:
        db.dispose()
