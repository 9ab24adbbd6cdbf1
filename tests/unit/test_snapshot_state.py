"""Snapshots of the registry state: services, version services, endpoints, instances."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshpy.snapshot import UnknownInstanceError, build_snapshot, version_service_name
from tests.unit.snapshots import CATCH_ALL, SHOP, addresses, clusters, inst, listener, vhost


def test_version_services_get_clusters_and_virtual_hosts() -> None:
    snap = build_snapshot(SHOP, "cart-1")
    found = clusters(snap)
    assert addresses(found["payment.default"]) == [
        "10.0.0.5:15006",
        "10.0.0.6:15006",
        "10.0.0.7:15006",
    ]
    assert addresses(found["payment-v1.default"]) == ["10.0.0.5:15006", "10.0.0.6:15006"]
    assert addresses(found["payment-v2.default"]) == ["10.0.0.7:15006"]
    v2 = vhost(snap, "payment-v2.default")
    assert v2["hosts"] == ["payment-v2", "payment-v2.default", "payment-v2.default.svc"]
    assert v2["rules"] == [
        {"matches": CATCH_ALL, "backends": [{"cluster": "payment-v2.default", "weight": 1}]}
    ]


def test_only_healthy_instances_are_endpoints() -> None:
    state = replace(
        SHOP,
        instances=(
            *SHOP.instances,
            inst("pay-4", "payment", "10.0.0.10", version="v1", state="draining"),
            inst("pay-5", "payment", "10.0.0.11", version="v1", state="unhealthy"),
            inst("pay-6", "payment", "10.0.0.12", version="v1", state="starting"),
        ),
    )
    found = clusters(build_snapshot(state, "cart-1"))
    assert addresses(found["payment-v1.default"]) == ["10.0.0.5:15006", "10.0.0.6:15006"]


def test_a_service_whose_instances_all_drain_keeps_an_empty_cluster() -> None:
    drained = tuple(
        replace(i, state="draining") if i.service == "payment" else i for i in SHOP.instances
    )
    found = clusters(build_snapshot(replace(SHOP, instances=drained), "cart-1"))
    assert found["payment.default"]["endpoints"] == []
    assert found["payment-v2.default"]["endpoints"] == []


def test_ipv6_and_odd_addresses() -> None:
    state = replace(
        SHOP,
        instances=(
            inst("v6", "api", "fd00::5"),
            inst("dup", "api", "fd00::5"),
            inst("name", "api", "api.internal"),
            inst("any", "api", "0.0.0.0"),
            inst("port0", "api", "10.0.0.40", inbound_port=0),
        ),
    )
    snap = build_snapshot(state, "v6")
    assert addresses(clusters(snap)["api.default"]) == ["[fd00::5]:15006"]
    assert listener(snap, "inbound")["address"] == "[::]:15006"


def test_unknown_instance() -> None:
    with pytest.raises(UnknownInstanceError):
        build_snapshot(SHOP, "nope")


def test_version_service_names() -> None:
    assert version_service_name("payment", "v2") == "payment-v2"
    assert version_service_name("payment", None) is None
    assert version_service_name("payment", "") is None
    assert version_service_name("payment", "V2.1") is None
    assert version_service_name("p" * 61, "v2") is None


def test_service_keys_include_version_services() -> None:
    assert SHOP.service_keys() == {
        ("default", "cart"),
        ("default", "payment"),
        ("default", "payment-v1"),
        ("default", "payment-v2"),
        ("default", "redis"),
        ("billing", "ledger"),
    }


def test_edge_metrics_name_the_sidecars_workload_and_each_clusters_service() -> None:
    assert build_snapshot(SHOP, "pay-3")["metrics"] == {
        "workload": {"namespace": "default", "service": "payment", "version": "v2"}
    }
    snap = build_snapshot(SHOP, "cart-1")
    assert snap["metrics"] == {"workload": {"namespace": "default", "service": "cart"}}
    found = clusters(snap)
    assert found["payment.default"]["service"] == {"namespace": "default", "service": "payment"}
    # A version service is its parent's version.
    assert found["payment-v2.default"]["service"] == {
        "namespace": "default",
        "service": "payment",
        "version": "v2",
    }
    assert "service" not in found["local-app"]


def test_a_workload_name_metrics_cannot_take_is_left_unknown() -> None:
    odd = replace(SHOP, instances=(inst("odd-1", "Odd_Name", "10.0.0.50"),))
    assert build_snapshot(odd, "odd-1")["metrics"] == {}


def test_endpoint_instances_are_those_a_cluster_holds() -> None:
    state = replace(
        SHOP,
        instances=(
            *SHOP.instances,
            inst("pay-4", "payment", "10.0.0.8", version="v2", state="draining"),
            inst("pay-5", "payment", "0.0.0.0", version="v2"),
        ),
    )
    names = ("payment", "payment-v2", "cart", "ledger")
    ids = {name: [i.id for i in state.endpoint_instances("default", name)] for name in names}
    assert ids == {
        "payment": ["pay-1", "pay-2", "pay-3"],
        "payment-v2": ["pay-3"],
        "cart": ["cart-1"],
        "ledger": [],
    }
    # The same instances as the cluster's endpoints.
    cluster = clusters(build_snapshot(state, "cart-1"))["payment-v2.default"]
    assert addresses(cluster) == ["10.0.0.7:15006"]
