"""A sidecar's whole snapshot: its listeners, their authorization, and byte-equal rebuilds."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest

from meshpy.resources import Resource, parse
from meshpy.snapshot import (
    LOCAL_APP_CLUSTER,
    MeshIdentity,
    MeshState,
    MeshTracing,
    ServiceInfo,
    SidecarPorts,
    Upstream,
    build_snapshot,
)
from tests.unit.snapshots import (
    CATCH_ALL,
    SHOP,
    backend_policy,
    clusters,
    inst,
    listener,
    to_payment,
    vhost,
)


def test_the_whole_snapshot_of_a_small_mesh() -> None:
    state = MeshState(
        services=(ServiceInfo(namespace="default", name="payment"),),
        instances=(
            inst("pay-1", "payment", "10.0.0.5"),
            inst("cart-1", "cart", "127.0.0.1", inbound_port=15106, app_port=8081),
        ),
        revision=7,
    )
    assert build_snapshot(state, "cart-1") == {
        "version": 7,
        "listeners": [
            {
                "name": "inbound",
                "address": "127.0.0.1:15106",
                "direction": "inbound",
                "protocol": "http",
                "cluster": "local-app",
            },
            {
                "name": "outbound",
                "address": "127.0.0.1:15001",
                "protocol": "http",
                "direction": "outbound",
                "routes": [
                    {
                        "name": "cart.default",
                        "hosts": ["cart", "cart.default", "cart.default.svc"],
                        "rules": [
                            {
                                "matches": CATCH_ALL,
                                "backends": [{"cluster": "cart.default", "weight": 1}],
                            }
                        ],
                    },
                    {
                        "name": "payment.default",
                        "hosts": ["payment", "payment.default", "payment.default.svc"],
                        "rules": [
                            {
                                "matches": CATCH_ALL,
                                "backends": [{"cluster": "payment.default", "weight": 1}],
                            }
                        ],
                    },
                ],
            },
        ],
        "clusters": [
            {
                "name": "cart.default",
                "endpoints": ["127.0.0.1:15106"],
                "lb": "peak_ewma",
                "protocol": "http1",
                "service": {"namespace": "default", "service": "cart"},
            },
            {
                "name": "local-app",
                "endpoints": ["127.0.0.1:8081"],
                "lb": "round_robin",
                "protocol": "http1",
            },
            {
                "name": "payment.default",
                "endpoints": ["10.0.0.5:15006"],
                "lb": "peak_ewma",
                "protocol": "http1",
                "service": {"namespace": "default", "service": "payment"},
            },
        ],
        "metrics": {"workload": {"namespace": "default", "service": "cart"}},
    }


def test_the_own_instance_gets_an_inbound_listener() -> None:
    snap = build_snapshot(SHOP, "pay-1")
    assert listener(snap, "inbound") == {
        "name": "inbound",
        "address": "0.0.0.0:15006",
        "direction": "inbound",
        "protocol": "http",
        "cluster": LOCAL_APP_CLUSTER,
    }
    assert clusters(snap)[LOCAL_APP_CLUSTER]["endpoints"] == ["127.0.0.1:8080"]


def test_a_loopback_instance_listens_on_its_loopback_address() -> None:
    local = inst("local", "cart", "127.0.0.2", inbound_port=20001)
    snap = build_snapshot(replace(SHOP, instances=(*SHOP.instances, local)), "local")
    assert listener(snap, "inbound")["address"] == "127.0.0.2:20001"


def test_no_app_port_no_inbound_listener() -> None:
    client = inst("job", "batch", "10.0.0.30", app_port=None)
    snap = build_snapshot(replace(SHOP, instances=(*SHOP.instances, client)), "job")
    assert [lst["name"] for lst in snap["listeners"]] == ["outbound"]
    assert LOCAL_APP_CLUSTER not in clusters(snap)


def test_sidecar_ports_set_the_outbound_address() -> None:
    snap = build_snapshot(SHOP, "cart-1", SidecarPorts(outbound=25001))
    assert listener(snap, "outbound")["address"] == "127.0.0.1:25001"
    snap = build_snapshot(SHOP, "cart-1", SidecarPorts(outbound=25001, outbound_host="::1"))
    assert listener(snap, "outbound")["address"] == "[::1]:25001"


def test_an_empty_mesh_still_has_an_outbound_listener() -> None:
    alone = MeshState(instances=(inst("x", "x", "10.0.0.1", state="starting"),))
    routes = listener(build_snapshot(alone, "x"), "outbound")["routes"]
    assert [v["name"] for v in routes] == ["x.default"]
    nothing = MeshState(
        instances=(inst("x", "x", "10.0.0.1", namespace="Not_Valid", app_port=None),)
    )
    assert listener(build_snapshot(nothing, "x"), "outbound")["routes"] == [
        {"name": "no-services", "hosts": ["*"], "rules": []}
    ]


def test_equal_states_give_byte_equal_snapshots() -> None:
    canary = to_payment(
        {
            "backendRefs": [
                {"name": "payment-v1", "weight": 90},
                {"name": "payment-v2", "weight": 10},
            ]
        }
    )
    state = replace(
        SHOP, routes=(canary,), backend_policies=(backend_policy("cart", "round_robin"),)
    )
    first = json.dumps(build_snapshot(state, "cart-1"))
    rng = random.Random(7)
    for _ in range(5):
        services, instances = list(state.services), list(state.instances)
        rng.shuffle(services)
        rng.shuffle(instances)
        shuffled = replace(state, services=tuple(services), instances=tuple(instances))
        assert json.dumps(build_snapshot(shuffled, "cart-1")) == first
    assert json.loads(first)["version"] == 42


def authz_policy(
    name: str,
    targets: list[str],
    action: str,
    rules: list[dict[str, Any]],
    namespace: str = "default",
) -> Resource:
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "targetRefs": [{"kind": "Service", "name": t} for t in targets],
                "action": action,
                "rules": rules,
            },
        }
    )


CART_CHARGES = authz_policy(
    "payment-callers",
    ["payment"],
    "ALLOW",
    [
        {
            "sources": [{"type": "ServiceAccount", "serviceAccount": {"name": "cart"}}],
            "to": [{"paths": ["/charge"], "methods": ["POST"]}],
        }
    ],
)


V2_DENY = authz_policy(
    "v2-no-refunds", ["payment-v2"], "DENY", [{"to": [{"paths": ["/refunds/*"]}]}]
)


def test_authorization_policies_reach_the_inbound_listener_of_their_targets() -> None:
    state = replace(
        SHOP,
        identity=MeshIdentity(trust_domain="example.org"),
        authorization_policies=(CART_CHARGES, V2_DENY),
    )
    allow = {
        "name": "default/payment-callers",
        "action": "allow",
        "rules": [
            {
                "sources": [{"identity": "spiffe://example.org/ns/default/sa/cart"}],
                "to": [{"paths": [{"exact": "/charge"}], "methods": ["POST"]}],
            }
        ],
    }
    deny = {
        "name": "default/v2-no-refunds",
        "action": "deny",
        "rules": [{"to": [{"paths": [{"prefix": "/refunds/"}]}]}],
    }
    # A v1 instance: the policy on payment; a v2 instance: the version service's too.
    assert listener(build_snapshot(state, "pay-1"), "inbound")["authorization"] == {
        "default": "all_unauthenticated",
        "policies": [allow],
    }
    assert listener(build_snapshot(state, "pay-3"), "inbound")["authorization"] == {
        "default": "all_unauthenticated",
        "policies": [allow, deny],
    }
    # Not targeted, and everyone allowed by default: nothing to enforce.
    assert "authorization" not in listener(build_snapshot(state, "cart-1"), "inbound")
    # Only the inbound listener is authorized; the outbound one is the app's own.
    assert "authorization" not in listener(build_snapshot(state, "pay-1"), "outbound")


@pytest.mark.parametrize(
    ("default", "sent"),
    [("all-authenticated", "all_authenticated"), ("deny", "deny")],
)
def test_the_mesh_default_reaches_every_inbound_listener(default: Any, sent: str) -> None:
    state = replace(SHOP, identity=MeshIdentity(trust_domain="example.org", authz_default=default))
    for instance in ("cart-1", "pay-1", "ledger-1", "redis-1"):
        got = listener(build_snapshot(state, instance), "inbound")["authorization"]
        assert got == {"default": sent, "policies": []}, instance


def test_without_a_mesh_identity_source_rules_match_no_caller() -> None:
    state = replace(SHOP, authorization_policies=(CART_CHARGES,))
    authorization = listener(build_snapshot(state, "pay-1"), "inbound")["authorization"]
    assert authorization["default"] == "all_unauthenticated"
    assert authorization["policies"][0]["rules"][0]["sources"] == []


def test_policies_of_another_namespace_do_not_apply() -> None:
    elsewhere = authz_policy("x", ["payment"], "DENY", [{}], namespace="billing")
    state = replace(SHOP, authorization_policies=(elsewhere,))
    assert "authorization" not in listener(build_snapshot(state, "pay-1"), "inbound")


def test_upstreams_get_local_tcp_listeners() -> None:
    ports = SidecarPorts(
        upstreams=(
            Upstream("redis", 16379),
            Upstream("ledger", 7000, namespace="billing"),
            Upstream("nowhere", 7001),
        )
    )
    snap = build_snapshot(SHOP, "cart-1", ports)
    assert [lst for lst in snap["listeners"] if lst["name"].startswith("upstream-")] == [
        {
            "name": "upstream-7000",
            "address": "127.0.0.1:7000",
            "protocol": "tcp",
            "direction": "outbound",
            "cluster": "ledger.billing",
        },
        {
            "name": "upstream-16379",
            "address": "127.0.0.1:16379",
            "protocol": "tcp",
            "direction": "outbound",
            "cluster": "redis.default",
        },
    ]
    # The rest of the snapshot is what it is without upstreams.
    plain = build_snapshot(SHOP, "cart-1")
    assert snap["clusters"] == plain["clusters"]


def test_a_grpc_service_is_routed_as_http_and_its_app_reached_over_http2() -> None:
    state = replace(
        SHOP,
        services=(
            *SHOP.services,
            ServiceInfo(namespace="default", name="greeter", protocol="grpc"),
        ),
        instances=(*SHOP.instances, inst("greeter-1", "greeter", "10.0.0.8")),
    )
    own = build_snapshot(state, "greeter-1")
    assert listener(own, "inbound")["protocol"] == "http"
    assert clusters(own)[LOCAL_APP_CLUSTER]["protocol"] == "http2"
    caller = build_snapshot(state, "cart-1")
    assert vhost(caller, "greeter.default")["hosts"][0] == "greeter"
    assert clusters(caller)[LOCAL_APP_CLUSTER]["protocol"] == "http1"


def test_mesh_tracing_gives_each_sidecar_its_service_as_the_spans_resource() -> None:
    assert "tracing" not in build_snapshot(SHOP, "pay-1")
    traced = replace(SHOP, tracing=MeshTracing(sample_percent=12.5))
    assert build_snapshot(traced, "pay-3")["tracing"] == {
        "sample_percent": 12.5,
        "service": "payment",
        "resource": {
            "service.namespace": "default",
            "service.instance.id": "pay-3",
            "service.version": "v2",
        },
    }
    cart = build_snapshot(traced, "cart-1")["tracing"]
    assert "service.version" not in cart["resource"]


def _tracing_policy(
    name: str, targets: list[str], percent: float, namespace: str = "default"
) -> Resource:
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "TracingPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": t} for t in targets],
                "samplePercent": percent,
            },
        }
    )


def test_tracing_policies_set_a_services_sampling() -> None:
    policies = (
        _tracing_policy("all-payment", ["payment"], 50),
        _tracing_policy("canary", ["payment-v2"], 100),
        _tracing_policy("later", ["payment"], 5),  # the oldest policy wins
        _tracing_policy("elsewhere", ["cart"], 75, namespace="other"),
    )
    traced = replace(SHOP, tracing=MeshTracing(sample_percent=1), tracing_policies=policies)
    percents = {
        instance: build_snapshot(traced, instance)["tracing"]["sample_percent"]
        for instance in ("pay-1", "pay-3", "cart-1")
    }
    # v2's instance follows its version service's policy, v1's the service's; cart, whose
    # only policy is in another namespace, the mesh's.
    assert percents == {"pay-1": 50, "pay-3": 100, "cart-1": 1}
