"""Records of issued certificates: stored, listed, pruned; an 0001 database gains the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import exc as sa_exc

from meshpy.registry import migrations, repository
from meshpy.registry.db import Database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _new(
    serial: str, *, minutes: int, service: str = "cart", instance: str | None = None
) -> repository.NewCertificate:
    issued = T0 + timedelta(minutes=minutes)
    return repository.NewCertificate(
        serial=serial,
        identity=f"spiffe://meshpy.local/ns/default/sa/{service}",
        namespace="default",
        service=service,
        instance_id=instance,
        token_id="0123456789abcdef",
        not_before=issued - timedelta(seconds=20),
        not_after=issued + timedelta(hours=1),
        issued_at=issued,
        chain_pem="-----BEGIN CERTIFICATE-----\n...\n",
    )


def test_record_list_prune(db: Database) -> None:
    with db.transaction() as session:
        revision = repository.current_revision(session)
        repository.record_certificate(session, _new("aa", minutes=0, instance="i-1"))
        repository.record_certificate(session, _new("bb", minutes=1, service="payment"))
        repository.record_certificate(session, _new("cc", minutes=2, instance="i-1"))
    with db.transaction(write=False) as session:
        assert repository.current_revision(session) == revision  # not a config change
        rows = repository.list_certificates(session)
        assert [r.serial for r in rows] == ["cc", "bb", "aa"]
        assert rows[0].issued_at == T0 + timedelta(minutes=2)
        assert rows[0].issued_at.tzinfo is not None
        assert [r.serial for r in repository.list_certificates(session, instance_id="i-1")] == [
            "cc",
            "aa",
        ]
        assert [r.serial for r in repository.list_certificates(session, service="payment")] == [
            "bb"
        ]
        assert [r.serial for r in repository.list_certificates(session, limit=1)] == ["cc"]
    with pytest.raises(sa_exc.IntegrityError), db.transaction() as session:
        repository.record_certificate(session, _new("aa", minutes=5))  # serials are unique
    with db.transaction() as session:
        cutoff = T0 + timedelta(hours=1, minutes=1, seconds=30)
        assert repository.prune_certificates(session, expired_before=cutoff) == 2
    with db.transaction(write=False) as session:
        assert [r.serial for r in repository.list_certificates(session)] == ["cc"]


def test_upgrade_from_0001_adds_the_table(db_url: str) -> None:
    database = Database(db_url)
    try:
        config = migrations.alembic_config()
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        assert migrations.check(database).current == "0001"
        assert "issued_certificates" not in sa.inspect(database.engine).get_table_names()
        if database.dialect == "sqlite":
            assert migrations.prepare(database) is not None  # the server upgrades SQLite
        else:
            with pytest.raises(migrations.SchemaError, match=r"0001, this meshpy needs \d{4}"):
                migrations.prepare(database)
            migrations.upgrade(database)  # what `meshpy db upgrade` runs
        status = migrations.check(database)
        assert status.current == status.head
        assert "issued_certificates" in sa.inspect(database.engine).get_table_names()
        with database.transaction() as session:
            repository.record_certificate(session, _new("dd", minutes=0))
    finally:
        database.dispose()
