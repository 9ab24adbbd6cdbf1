"""Migration 0003 adds instance_stats to a registry that has instances, on both databases,
and goes back down cleanly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command

from meshpy.registry import leases, migrations, repository
from meshpy.registry.db import Database

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
POLICY = leases.LeasePolicy(ttl=timedelta(seconds=15), removal_grace=timedelta(seconds=60))


def _register_at_0002(database: Database) -> str:
    """An instance of payment v2, written as a 0002 registry holds it (no later columns)."""
    instance = "6f1c2c1e-0000-4000-8000-000000000002"
    with database.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO services (namespace, name, protocol, ports, created_at) "
                "VALUES ('default', 'payment', 'http', '[]', :now)"
            ),
            {"now": T0},
        )
        connection.execute(
            sa.text(
                "INSERT INTO instances (id, namespace, service, version, labels, address, "
                "inbound_port, state, passing_reports, failing_reports, lease_expires_at, "
                "registered_at, updated_at) VALUES (:id, 'default', 'payment', 'v2', '{}', "
                "'10.0.0.7', 15006, 'starting', 0, 0, :expires, :now, :now)"
            ),
            {"id": instance, "now": T0, "expires": T0 + timedelta(seconds=15)},
        )
    return instance


def test_upgrade_from_0002_keeps_instances_and_takes_their_stats(db_url: str) -> None:
    database = Database(db_url)
    try:
        config = migrations.alembic_config()
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0002")
        assert "instance_stats" not in sa.inspect(database.engine).get_table_names()
        instance = _register_at_0002(database)

        migrations.upgrade(database)
        status = migrations.check(database)
        assert status.current == status.head
        assert "instance_stats" in sa.inspect(database.engine).get_table_names()
        report = repository.InboundReport(
            started_at=T0, requests={"2xx": 9, "5xx": 1}, duration_buckets={"+Inf": 10}
        )
        with database.transaction() as session:
            renewed = repository.renew_lease(
                session,
                "default",
                "payment",
                instance,
                leases.Health.PASSING,
                now=T0 + timedelta(seconds=5),
                policy=POLICY,
                stats=report,
            )
            assert renewed is not None
        with database.transaction(write=False) as session:
            rows = repository.service_stats(session, "default", "payment", "v2")
            assert rows is not None
            [(found, stats)] = rows
            assert found.id == instance
            assert stats is not None
            assert (stats.requests, stats.started_at) == ({"2xx": 9, "5xx": 1}, T0)

        # Deregistering the instance drops its report (ON DELETE CASCADE).
        with database.transaction() as session:
            assert repository.deregister_instance(
                session, "default", "payment", instance, now=T0 + timedelta(seconds=6)
            )
        with database.engine.connect() as connection:
            count = connection.execute(sa.text("SELECT count(*) FROM instance_stats")).scalar()
        assert count == 0

        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        assert "instance_stats" not in sa.inspect(database.engine).get_table_names()
    finally:
        database.dispose()
