"""Snapshot clusters: the BackendPolicy of each, zones, and the mTLS identity to expect."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshpy.ca.spiffeid import workload_id
from meshpy.resources import parse
from meshpy.snapshot import LOCAL_APP_CLUSTER, MeshIdentity, build_snapshot
from tests.unit.snapshots import SHOP, backend_policy, clusters, inst, listener


@pytest.mark.parametrize(
    ("lb", "sent"),
    [
        ("round_robin", "round_robin"),
        ("least_request", "least_request"),
        ("peak_ewma", "peak_ewma"),
        ("ring_hash", "ring_hash"),
        ("maglev", "maglev"),
    ],
)
def test_backend_policy_load_balancers(lb: str, sent: str) -> None:
    state = replace(SHOP, backend_policies=(backend_policy("payment", lb),))
    found = clusters(build_snapshot(state, "cart-1"))
    assert found["payment.default"]["lb"] == sent
    assert found["payment-v1.default"]["lb"] == sent, "version services follow their service"
    hashing = lb in ("ring_hash", "maglev")
    assert found["payment.default"].get("hash_on") == ({"header": "x-user"} if hashing else None)
    assert found["cart.default"]["lb"] == "peak_ewma", "the default balancer"


def test_every_backend_policy_field_reaches_the_cluster() -> None:
    policy = parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "BackendPolicy",
            "metadata": {"name": "payment", "namespace": "default"},
            "spec": {
                "targetRefs": [{"kind": "Service", "name": "payment"}],
                "loadBalancer": {"type": "ring_hash", "hashOn": {"cookie": "session"}},
                "outlierDetection": {"consecutive5xx": 3, "baseEjectionTime": "10s"},
                "connectionLimits": {"maxConnections": 100, "maxRequests": 50},
                "retryBudget": {"percent": 10, "minRetriesPerSecond": 5},
                "slowStart": {"window": "30s"},
                "faultInjection": {
                    "delay": {"percent": 5, "duration": "2s"},
                    "abort": {"percent": 1, "status": 503},
                },
            },
        }
    )
    found = clusters(build_snapshot(replace(SHOP, backend_policies=(policy,)), "cart-1"))
    payment = found["payment.default"]
    kept_apart = ("name", "endpoints", "tls", "service")
    assert {k: v for k, v in payment.items() if k not in kept_apart} == {
        "lb": "ring_hash",
        "protocol": "http1",
        "hash_on": {"cookie": "session"},
        "outlier_detection": {
            "consecutive_5xx": 3,
            "interval": "10s",
            "base_ejection_time": "10s",
            "max_ejection_percent": 10,
        },
        "circuit_breakers": {"max_connections": 100, "max_requests": 50},
        "retry_budget": {"percent": 10, "min_retries_per_second": 5},
        "slow_start": {"window": "30s"},
        "fault": {
            "delay": {"percent": 5, "duration": "2s"},
            "abort": {"percent": 1, "status": 503},
        },
    }
    assert found["payment-v2.default"]["outlier_detection"] == payment["outlier_detection"]
    assert "outlier_detection" not in found["cart.default"]


def test_zones_reach_endpoints_and_the_callers_clusters() -> None:
    zoned = replace(
        SHOP,
        instances=(
            replace(inst("cart-1", "cart", "10.0.0.2"), zone="zone-a"),
            replace(inst("pay-1", "payment", "10.0.0.5", version="v1"), zone="zone-a"),
            replace(inst("pay-2", "payment", "10.0.0.6", version="v1"), zone="zone-b"),
            inst("pay-3", "payment", "10.0.0.7", version="v2"),
        ),
    )
    found = clusters(build_snapshot(zoned, "cart-1"))
    assert found["payment.default"]["endpoints"] == [
        {"address": "10.0.0.5:15006", "zone": "zone-a"},
        {"address": "10.0.0.6:15006", "zone": "zone-b"},
        "10.0.0.7:15006",
    ]
    assert found["payment.default"]["local_zone"] == "zone-a"
    assert "local_zone" not in found[LOCAL_APP_CLUSTER]
    unzoned = clusters(build_snapshot(zoned, "pay-3"))
    assert "local_zone" not in unzoned["payment.default"]


def test_the_oldest_policy_wins_and_versions_can_have_their_own() -> None:
    policies = (
        backend_policy("payment", "round_robin"),
        backend_policy("payment", "least_request"),
        backend_policy("payment-v2", "least_request"),
        backend_policy("cart", "round_robin", namespace="billing"),
    )
    found = clusters(build_snapshot(replace(SHOP, backend_policies=policies), "cart-1"))
    assert found["payment.default"]["lb"] == "round_robin"
    assert found["payment-v1.default"]["lb"] == "round_robin"
    assert found["payment-v2.default"]["lb"] == "least_request"
    assert found["cart.default"]["lb"] == "peak_ewma", "the policy is for billing/cart"


def test_strict_mtls_between_sidecars() -> None:
    state = replace(SHOP, identity=MeshIdentity(trust_domain="example.org"))
    snap = build_snapshot(state, "pay-1")
    assert listener(snap, "inbound")["tls"] == {"mode": "strict"}
    assert "tls" not in listener(snap, "outbound")
    found = clusters(snap)
    assert found["payment.default"]["tls"] == {
        "identity": "spiffe://example.org/ns/default/sa/payment"
    }
    # A version service's instances carry the identity of the service they belong to.
    assert found["payment-v2.default"]["tls"] == found["payment.default"]["tls"]
    assert found["ledger.billing"]["tls"] == {
        "identity": "spiffe://example.org/ns/billing/sa/ledger"
    }
    assert found["redis.default"]["tls"]["identity"].endswith("/ns/default/sa/redis")
    # The app is next door: no TLS to it.
    assert "tls" not in found[LOCAL_APP_CLUSTER]


def test_permissive_mtls_and_disabled() -> None:
    permissive = replace(SHOP, identity=MeshIdentity(trust_domain="t.local", mtls="permissive"))
    snap = build_snapshot(permissive, "cart-1")
    assert listener(snap, "inbound")["tls"] == {"mode": "permissive"}
    # Outbound is mTLS in every mode but disabled: sidecars always can speak it.
    assert "tls" in clusters(snap)["payment.default"]

    disabled = replace(SHOP, identity=MeshIdentity(trust_domain="t.local", mtls="disabled"))
    assert build_snapshot(disabled, "cart-1") == build_snapshot(SHOP, "cart-1")


def test_spiffe_ids() -> None:
    assert workload_id("meshpy.local", "shop", "cart") == "spiffe://meshpy.local/ns/shop/sa/cart"
