"""``GET /api/v1/status``: the server's version, clock, revision and database schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from meshpy import __version__
from meshpy.registry import migrations
from meshpy.registry.db import Database
from tests.api.live import LiveServer


def _set_schema_revision(api: LiveServer, revision: str) -> None:
    """What another meshpy migrating the shared database would leave behind."""
    db = Database(api.settings.database_url)
    try:
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    finally:
        db.dispose()


def test_status_names_version_clock_revision_and_schema(api: LiveServer) -> None:
    before = datetime.now(UTC)
    response = api.admin.get("/api/v1/status")
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    status = response.json()
    assert set(status) == {"version", "time", "revision", "database"}
    assert status["version"] == __version__
    assert before <= datetime.fromisoformat(status["time"]) <= after
    assert status["revision"] == api.admin.get("/readyz").json()["revision"]
    dialect = "postgresql" if api.settings.database_url.startswith("postgresql") else "sqlite"
    assert status["database"] == {
        "dialect": dialect,
        "schema_revision": migrations.head(),
        "schema_head": migrations.head(),
        "schema_known": True,
    }


@pytest.mark.parametrize("behind", [True, False], ids=["behind", "newer than this server knows"])
def test_status_reads_the_schema_as_it_is_now(api: LiveServer, behind: bool) -> None:
    revision = _revision_ids()[-1] if behind else "ffffffffffff"
    _set_schema_revision(api, revision)
    database = api.admin.get("/api/v1/status").json()["database"]
    assert database["schema_revision"] == revision != migrations.head()
    assert database["schema_head"] == migrations.head()
    assert database["schema_known"] is behind


def _revision_ids() -> list[str]:
    """Every schema revision this meshpy ships, newest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrations.alembic_config())
    return [s.revision for s in script.walk_revisions()]


def test_status_is_for_the_admin(api: LiveServer) -> None:
    assert api.client().get("/api/v1/status").status_code == 401
    join = api.client(api.join_token("cart")).get("/api/v1/status")
    assert join.status_code == 403
    assert join.headers["content-type"] == "application/problem+json"
