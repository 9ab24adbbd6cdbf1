"""Repository functions against both databases, with a clock the test controls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from meshpy import resources
from meshpy.registry import repository
from meshpy.registry.db import Database
from meshpy.registry.leases import Health, LeasePolicy

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = LeasePolicy(ttl=timedelta(seconds=15), removal_grace=timedelta(seconds=60), threshold=2)


def _register(db: Database, service: str = "cart", **kw: object) -> str:
    new = repository.NewInstance(address="10.0.0.1", inbound_port=15006, **kw)  # type: ignore[arg-type]
    with db.transaction() as s:
        row = repository.register_instance(s, "default", service, new, now=T0, policy=POLICY)
        return row.id


def _revision(db: Database) -> int:
    with db.transaction(write=False) as s:
        return repository.current_revision(s)


def test_times_come_back_as_utc(db: Database) -> None:
    instance_id = _register(db)
    with db.transaction(write=False) as s:
        row = repository.get_instance(s, "default", "cart", instance_id)
        assert row is not None
        assert row.registered_at == T0
        assert row.lease_expires_at == T0 + POLICY.ttl
        assert row.registered_at.tzinfo is not None


def test_revision_counts_config_changes_only(db: Database) -> None:
    start = _revision(db)
    instance_id = _register(db)
    after_register = _revision(db)
    assert after_register == start + 1
    with db.transaction() as s:  # starting -> healthy: a change
        repository.renew_lease(
            s, "default", "cart", instance_id, Health.PASSING, now=T0, policy=POLICY
        )
    assert _revision(db) == after_register + 1
    with db.transaction() as s:  # healthy stays healthy: only the lease moves
        row = repository.renew_lease(
            s,
            "default",
            "cart",
            instance_id,
            Health.PASSING,
            now=T0 + timedelta(seconds=5),
            policy=POLICY,
        )
        assert row is not None
        assert row.lease_expires_at == T0 + timedelta(seconds=20)
        assert row.passing_reports == 2
    assert _revision(db) == after_register + 1
    with db.transaction() as s:
        repository.create_join_token(
            s, namespace="default", service="cart", ttl=timedelta(hours=1), now=T0
        )
    assert _revision(db) == after_register + 1


def test_expire_then_remove(db: Database) -> None:
    silent = _register(db, version="v2")
    renewing = _register(db)
    route = resources.parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "canary"},
            "spec": {
                "parentRefs": [{"group": "", "kind": "Service", "name": "cart"}],
                "rules": [{"backendRefs": [{"name": "cart-v2", "port": 80}]}],
            },
        }
    )
    with db.transaction() as s:
        applied = repository.put_resource(s, route, "default", now=T0)
        assert applied.row.status["parents"][0]["conditions"][1]["status"] == "True"

    def tick(seconds: float) -> repository.Expired:
        now = T0 + timedelta(seconds=seconds)
        with db.transaction() as s:
            repository.renew_lease(
                s, "default", "cart", renewing, Health.PASSING, now=now, policy=POLICY
            )
        with db.transaction() as s:
            return repository.expire_leases(s, now=now, policy=POLICY)

    assert tick(14) == repository.Expired()
    assert tick(15) == repository.Expired(unhealthy=1)
    assert tick(30) == repository.Expired()
    assert tick(74) == repository.Expired()
    revision = _revision(db)
    assert tick(75) == repository.Expired(removed=1)
    assert _revision(db) > revision
    with db.transaction(write=False) as s:
        assert repository.get_instance(s, "default", "cart", silent) is None
        view = repository.get_service(s, "default", "cart")
        assert view is not None
        assert [(e.id, e.state) for e in view.endpoints or []] == [(renewing, "healthy")]
        assert repository.get_service(s, "default", "cart-v2") is None
        row = repository.get_resource(s, "HTTPRoute", "default", "canary")
        assert row is not None
        resolved = row.status["parents"][0]["conditions"][1]
        assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound")


def test_leases_that_ended_before_a_restart_get_a_grace(db: Database) -> None:
    """A restarted server only expires leases that ended after it started (for one TTL)."""
    _register(db)  # its lease ends at T0 + 15 s
    started = T0 + timedelta(seconds=40)
    with db.transaction() as s:
        expired = repository.expire_leases(
            s, now=started + timedelta(seconds=1), policy=POLICY, ended_after=started
        )
    assert expired == repository.Expired()
    with db.transaction() as s:
        expired = repository.expire_leases(s, now=started + timedelta(seconds=16), policy=POLICY)
    assert expired == repository.Expired(unhealthy=1)


def test_join_tokens(db: Database) -> None:
    with db.transaction() as s:
        row, token = repository.create_join_token(
            s, namespace="default", service="cart", ttl=timedelta(minutes=5), now=T0
        )
    assert token.startswith(f"mpj_{row.id}.")
    with db.transaction(write=False) as s:
        found = repository.verify_join_token(s, token, now=T0)
        assert found is not None
        assert found.service == "cart"
        assert repository.verify_join_token(s, token, now=T0 + timedelta(minutes=5)) is None
        assert repository.verify_join_token(s, token + "x", now=T0) is None
        assert repository.verify_join_token(s, "mpj_nothing", now=T0) is None
        assert row.secret_hash not in token


def test_acks(db: Database) -> None:
    instance_id = _register(db)
    with db.transaction() as s:
        assert repository.record_ack(s, instance_id, 7, now=T0)
        assert repository.record_ack(s, instance_id, 8, now=T0)
        assert not repository.record_ack(s, "no-such-instance", 1, now=T0)
    with db.transaction() as s:  # acks go with their instance
        assert repository.deregister_instance(s, "default", "cart", instance_id, now=T0)


def test_insert_ignore_tells_whether_it_inserted(db: Database) -> None:
    """On PostgreSQL the driver reports no row count for ON CONFLICT DO NOTHING."""
    from meshpy.registry.models import Service

    values = {"namespace": "default", "name": "once", "protocol": "http", "ports": []}
    with db.transaction() as s:
        assert repository._insert_ignore(s, Service, values, now=T0)
    with db.transaction() as s:
        assert not repository._insert_ignore(s, Service, values, now=T0)
