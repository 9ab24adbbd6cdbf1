"""A sidecar's snapshot is a pure function of the registry state."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest

from meshpy.ca.spiffeid import workload_id
from meshpy.resources import HTTPPathMatch, HTTPRouteSpec, Resource, compute_status, parse
from meshpy.snapshot import (
    LOCAL_APP_CLUSTER,
    UNRESOLVED_CLUSTER,
    InstanceInfo,
    MeshIdentity,
    MeshState,
    ServiceInfo,
    SidecarPorts,
    UnknownInstanceError,
    Upstream,
    build_snapshot,
    version_service_name,
)

CATCH_ALL = [{"path": {"type": "PathPrefix", "value": "/"}}]


def inst(
    id: str,
    service: str,
    address: str,
    *,
    namespace: str = "default",
    version: str | None = None,
    state: str = "healthy",
    inbound_port: int = 15006,
    app_port: int | None = 8080,
) -> InstanceInfo:
    return InstanceInfo(
        id=id,
        namespace=namespace,
        service=service,
        version=version,
        address=address,
        inbound_port=inbound_port,
        app_port=app_port,
        state=state,  # type: ignore[arg-type]
    )


SHOP = MeshState(
    services=(
        ServiceInfo(namespace="default", name="cart"),
        ServiceInfo(namespace="default", name="payment"),
        ServiceInfo(namespace="default", name="redis", protocol="tcp"),
        ServiceInfo(namespace="billing", name="ledger"),
    ),
    instances=(
        inst("cart-1", "cart", "10.0.0.2"),
        inst("pay-1", "payment", "10.0.0.5", version="v1"),
        inst("pay-2", "payment", "10.0.0.6", version="v1"),
        inst("pay-3", "payment", "10.0.0.7", version="v2"),
        inst("redis-1", "redis", "10.0.0.9", inbound_port=16379),
        inst("ledger-1", "ledger", "10.0.1.4", namespace="billing"),
    ),
    revision=42,
)


def route(spec: dict[str, Any], *, name: str = "r", namespace: str = "default") -> Resource:
    return parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def to_payment(*rules: dict[str, Any], name: str = "r", namespace: str = "default") -> Resource:
    parent = {"kind": "Service", "name": "payment", "namespace": "default"}
    return route({"parentRefs": [parent], "rules": list(rules)}, name=name, namespace=namespace)


def backend_policy(target: str, lb: str, namespace: str = "default") -> Resource:
    load_balancer: dict[str, Any] = {"type": lb}
    if lb in ("ring_hash", "maglev"):
        load_balancer["hashOn"] = {"header": "x-user"}
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "BackendPolicy",
            "metadata": {"name": f"{target}-{lb.replace('_', '-')}", "namespace": namespace},
            "spec": {
                "targetRefs": [{"kind": "Service", "name": target}],
                "loadBalancer": load_balancer,
            },
        }
    )


def listener(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [lst for lst in snapshot["listeners"] if lst["name"] == name]
    return found


def vhost(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [v for v in listener(snapshot, "outbound")["routes"] if v["name"] == name]
    return found


def clusters(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in snapshot["clusters"]}


def addresses(cluster: dict[str, Any]) -> list[str]:
    return list(cluster["endpoints"])


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
                "protocol": "http",
                "cluster": "local-app",
            },
            {
                "name": "outbound",
                "address": "127.0.0.1:15001",
                "protocol": "http",
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
            },
        ],
    }


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


def test_short_host_names_only_in_the_sidecars_namespace() -> None:
    snap = build_snapshot(SHOP, "cart-1")
    assert vhost(snap, "ledger.billing")["hosts"] == ["ledger.billing", "ledger.billing.svc"]
    from_billing = build_snapshot(SHOP, "ledger-1")
    assert vhost(from_billing, "ledger.billing")["hosts"][0] == "ledger"
    assert vhost(from_billing, "payment.default")["hosts"] == [
        "payment.default",
        "payment.default.svc",
    ]


def test_a_canary_splits_90_10() -> None:
    canary = to_payment(
        {
            "backendRefs": [
                {"name": "payment-v1", "weight": 90},
                {"name": "payment-v2", "weight": 10},
            ]
        }
    )
    snap = build_snapshot(replace(SHOP, routes=(canary,)), "cart-1")
    assert vhost(snap, "payment.default")["rules"] == [
        {
            "matches": CATCH_ALL,
            "backends": [
                {"cluster": "payment-v1.default", "weight": 90},
                {"cluster": "payment-v2.default", "weight": 10},
            ],
        }
    ]
    assert vhost(snap, "payment-v1.default")["rules"][0]["backends"][0]["cluster"] == (
        "payment-v1.default"
    ), "a route to payment does not attach to its version services"


def test_attached_routes_replace_the_catch_all() -> None:
    only_api = to_payment(
        {
            "matches": [
                {
                    "path": {"type": "Exact", "value": "/api/charge"},
                    "headers": [{"name": "X-Beta", "value": "1"}],
                    "queryParams": [{"name": "q", "value": "v"}],
                    "method": "POST",
                },
                {"path": {"type": "PathPrefix", "value": "/api"}},
            ],
            "backendRefs": [{"name": "payment-v2"}],
            "timeouts": {"request": "5s"},
        },
        {
            "matches": [{"headers": [{"name": "x-debug", "value": "on"}]}],
            "backendRefs": [{"name": "payment"}],
        },
    )
    snap = build_snapshot(replace(SHOP, routes=(only_api,)), "cart-1")
    assert vhost(snap, "payment.default")["rules"] == [
        {
            "matches": [
                {
                    "path": {"type": "Exact", "value": "/api/charge"},
                    "headers": [{"name": "X-Beta", "value": "1"}],
                    "query_params": [{"name": "q", "value": "v"}],
                    "method": "POST",
                },
                {"path": {"type": "PathPrefix", "value": "/api"}},
            ],
            "backends": [{"cluster": "payment-v2.default", "weight": 1}],
            "timeouts": {"request": "5s"},
        },
        {
            "matches": [
                {
                    "path": {"type": "PathPrefix", "value": "/"},
                    "headers": [{"name": "x-debug", "value": "on"}],
                }
            ],
            "backends": [{"cluster": "payment.default", "weight": 1}],
        },
    ], "no catch-all: a request matching no rule gets 404 from the core"
    assert vhost(snap, "cart.default")["rules"][0]["matches"] == CATCH_ALL


def test_rules_of_several_routes_keep_creation_order() -> None:
    older = to_payment({"backendRefs": [{"name": "payment-v1"}]}, name="older")
    newer = to_payment(
        {"matches": [{"path": {"value": "/v2"}}], "backendRefs": [{"name": "payment-v2"}]},
        name="newer",
    )
    snap = build_snapshot(replace(SHOP, routes=(older, newer)), "cart-1")
    clusters_in_order = [
        r["backends"][0]["cluster"] for r in vhost(snap, "payment.default")["rules"]
    ]
    assert clusters_in_order == ["payment-v1.default", "payment-v2.default"]


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


def test_missing_and_unresolvable_backends_go_to_empty_clusters() -> None:
    rule = {
        "backendRefs": [
            {"name": "payment-v1", "weight": 80},
            {"name": "payment-v3", "weight": 15},
            {"name": "ledger", "namespace": "billing", "weight": 4},
            {"name": "payment", "kind": "ServiceImport", "weight": 1},
        ]
    }
    snap = build_snapshot(replace(SHOP, routes=(to_payment(rule),)), "cart-1")
    assert vhost(snap, "payment.default")["rules"][0]["backends"] == [
        {"cluster": "payment-v1.default", "weight": 80},
        {"cluster": "payment-v3.default", "weight": 15},
        {"cluster": UNRESOLVED_CLUSTER, "weight": 4},
        {"cluster": UNRESOLVED_CLUSTER, "weight": 1},
    ]
    found = clusters(snap)
    assert found["payment-v3.default"]["endpoints"] == []
    assert found[UNRESOLVED_CLUSTER]["endpoints"] == []


def test_a_rule_without_backends_answers_from_an_empty_cluster() -> None:
    snap = build_snapshot(replace(SHOP, routes=(to_payment({}),)), "cart-1")
    rule = vhost(snap, "payment.default")["rules"][0]
    assert rule["backends"] == [{"cluster": UNRESOLVED_CLUSTER, "weight": 1}]


def test_routes_to_missing_parents_attach_nowhere() -> None:
    stray = route({"parentRefs": [{"kind": "Service", "name": "nope"}], "rules": [{}]})
    assert build_snapshot(replace(SHOP, routes=(stray,)), "cart-1") == build_snapshot(
        SHOP, "cart-1"
    )


def test_consumer_routes_apply_only_in_their_namespace() -> None:
    producer = to_payment({"backendRefs": [{"name": "payment-v1"}]}, name="producer")
    consumer = to_payment(
        {"backendRefs": [{"name": "ledger"}]}, name="consumer", namespace="billing"
    )
    state = replace(SHOP, routes=(producer, consumer))
    from_default = vhost(build_snapshot(state, "cart-1"), "payment.default")["rules"]
    from_billing = vhost(build_snapshot(state, "ledger-1"), "payment.default")["rules"]
    assert [r["backends"][0]["cluster"] for r in from_default] == ["payment-v1.default"]
    assert [r["backends"][0]["cluster"] for r in from_billing] == ["ledger.billing"]


def test_regular_expression_matches_are_sent() -> None:
    regex = {
        "matches": [
            {
                "path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"},
                "headers": [{"type": "RegularExpression", "name": "x-user", "value": "a.*"}],
                "queryParams": [{"type": "RegularExpression", "name": "id", "value": "[0-9]+"}],
            }
        ],
        "backendRefs": [{"name": "payment-v2"}],
    }
    plain = {"backendRefs": [{"name": "payment-v1"}]}
    snap = build_snapshot(replace(SHOP, routes=(to_payment(regex, plain),)), "cart-1")
    rules = vhost(snap, "payment.default")["rules"]
    assert [r["backends"][0]["cluster"] for r in rules] == [
        "payment-v2.default",
        "payment-v1.default",
    ]
    assert rules[0]["matches"] == [
        {
            "path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"},
            "headers": [{"name": "x-user", "value": "a.*", "type": "RegularExpression"}],
            "query_params": [{"name": "id", "value": "[0-9]+", "type": "RegularExpression"}],
        }
    ]


def test_regular_expressions_the_core_refuses_are_refused_by_validation() -> None:
    lookahead = {"matches": [{"path": {"type": "RegularExpression", "value": "/(?=v)v1"}}]}
    with pytest.raises(ValueError, match="look-around"):
        to_payment(lookahead)


def test_stored_rules_with_refused_regular_expressions_are_left_out() -> None:
    # A route stored before validation used the data plane's regex rules.
    res = to_payment(
        {"backendRefs": [{"name": "payment-v2"}]}, {"backendRefs": [{"name": "payment-v1"}]}
    )
    spec = res.spec
    assert isinstance(spec, HTTPRouteSpec)
    bad_path = HTTPPathMatch.model_construct(type="RegularExpression", value="/(?=v)v1")
    bad_match = spec.rules[0].matches[0].model_copy(update={"path": bad_path})
    bad_rule = spec.rules[0].model_copy(update={"matches": [bad_match]})
    stored = replace(res, spec=spec.model_copy(update={"rules": [bad_rule, spec.rules[1]]}))
    snap = build_snapshot(replace(SHOP, routes=(stored,)), "cart-1")
    rules = vhost(snap, "payment.default")["rules"]
    assert [r["backends"][0]["cluster"] for r in rules] == ["payment-v1.default"]
    status = compute_status(stored, SHOP.service_keys())
    [partly] = [c for c in status["parents"][0]["conditions"] if c["type"] == "PartiallyInvalid"]
    assert partly["message"].startswith("Dropped Rule rules[0]: a RegularExpression match")


def test_filters_are_sent_on_rules_and_backends() -> None:
    rule = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
        "filters": [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {
                    "set": [{"name": "X-Env", "value": "prod"}],
                    "add": [{"name": "x-tag", "value": "a"}],
                    "remove": ["x-debug"],
                },
            },
            {
                "type": "ResponseHeaderModifier",
                "responseHeaderModifier": {"remove": ["server"]},
            },
            {
                "type": "URLRewrite",
                "urlRewrite": {
                    "hostname": "payment.internal",
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
                },
            },
            {
                "type": "RequestMirror",
                "requestMirror": {"backendRef": {"name": "cart"}},
            },
        ],
        "backendRefs": [
            {
                "name": "payment-v1",
                "filters": [
                    {
                        "type": "URLRewrite",
                        "urlRewrite": {
                            "path": {"type": "ReplaceFullPath", "replaceFullPath": "/v1"}
                        },
                    }
                ],
            },
            {"name": "payment-v2"},
        ],
    }
    snap = build_snapshot(replace(SHOP, routes=(to_payment(rule),)), "cart-1")
    [sent] = vhost(snap, "payment.default")["rules"]
    assert sent["filters"] == {
        "request_headers": {
            "set": [{"name": "X-Env", "value": "prod"}],
            "add": [{"name": "x-tag", "value": "a"}],
            "remove": ["x-debug"],
        },
        "response_headers": {"remove": ["server"]},
        "url_rewrite": {
            "hostname": "payment.internal",
            "path": {"type": "ReplacePrefixMatch", "value": "/"},
        },
        "request_mirror": {"cluster": "cart.default", "percent": 100},
    }
    assert sent["backends"] == [
        {
            "cluster": "payment-v1.default",
            "weight": 1,
            "filters": {"url_rewrite": {"path": {"type": "ReplaceFullPath", "value": "/v1"}}},
        },
        {"cluster": "payment-v2.default", "weight": 1},
    ]


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [
        ({"request": "10s"}, {"request": "10s"}),
        ({"request": "1h30m"}, {"request": "90m"}),
        ({"request": "10s", "backendRequest": "2s"}, {"request": "10s", "backend_request": "2s"}),
        ({"backendRequest": "1500ms"}, {"backend_request": "1500ms"}),
        ({"request": "0s"}, {"request": "24h"}),
        ({"request": "0s", "backendRequest": "3s"}, {"request": "24h", "backend_request": "3s"}),
        ({"request": "0s", "backendRequest": "48h"}, {"request": "24h", "backend_request": "24h"}),
        ({"request": "10s", "backendRequest": "0s"}, {"request": "10s"}),
        ({"backendRequest": "0s"}, None),
    ],
)
def test_rule_timeouts(timeouts: dict[str, str], expected: dict[str, str] | None) -> None:
    rule = {"backendRefs": [{"name": "payment"}], "timeouts": timeouts}
    snap = build_snapshot(replace(SHOP, routes=(to_payment(rule),)), "cart-1")
    assert vhost(snap, "payment.default")["rules"][0].get("timeouts") == expected


def test_repeated_header_names_match_on_the_first() -> None:
    match = {"headers": [{"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"}]}
    rule = {"matches": [match], "backendRefs": [{"name": "payment"}]}
    snap = build_snapshot(replace(SHOP, routes=(to_payment(rule),)), "cart-1")
    headers = vhost(snap, "payment.default")["rules"][0]["matches"][0]["headers"]
    assert headers == [{"name": "X-A", "value": "1"}]


def test_the_own_instance_gets_an_inbound_listener() -> None:
    snap = build_snapshot(SHOP, "pay-1")
    assert listener(snap, "inbound") == {
        "name": "inbound",
        "address": "0.0.0.0:15006",
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


def test_a_tcp_service_has_a_cluster_but_no_virtual_host() -> None:
    snap = build_snapshot(SHOP, "redis-1")
    assert addresses(clusters(snap)["redis.default"]) == ["10.0.0.9:16379"]
    names = [v["name"] for v in listener(snap, "outbound")["routes"]]
    assert "redis.default" not in names
    assert listener(snap, "inbound")["protocol"] == "tcp"


def test_sidecar_ports_set_the_outbound_address() -> None:
    snap = build_snapshot(SHOP, "cart-1", SidecarPorts(outbound=25001))
    assert listener(snap, "outbound")["address"] == "127.0.0.1:25001"
    snap = build_snapshot(SHOP, "cart-1", SidecarPorts(outbound=25001, outbound_host="::1"))
    assert listener(snap, "outbound")["address"] == "[::1]:25001"


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
    assert {k: v for k, v in payment.items() if k not in ("name", "endpoints", "tls")} == {
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


def test_retries_and_mirrors_are_sent() -> None:
    backend = {"kind": "Service", "name": "payment-v1", "port": 8080}
    shadow = {"kind": "Service", "name": "payment-v2", "port": 8080}
    rules = (
        {
            "backendRefs": [backend],
            "retry": {"codes": [503, 502, 503]},
            "filters": [
                {"type": "RequestMirror", "requestMirror": {"backendRef": shadow, "percent": 10}}
            ],
        },
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
            "backendRefs": [backend],
            "retry": {"attempts": 4, "backoff": "100ms"},
            "filters": [
                {
                    "type": "RequestMirror",
                    "requestMirror": {
                        "backendRef": shadow,
                        "fraction": {"numerator": 1, "denominator": 8},
                    },
                }
            ],
        },
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/all"}}],
            "backendRefs": [backend],
            "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": shadow}}],
        },
    )
    snap = build_snapshot(replace(SHOP, routes=(to_payment(*rules),)), "cart-1")
    sent = vhost(snap, "payment.default")["rules"]
    by_path = {rule["matches"][0]["path"]["value"]: rule for rule in sent}
    first = by_path["/"]
    assert first["retry"] == {"attempts": 2, "codes": [502, 503], "backoff": "25ms"}
    assert first["filters"]["request_mirror"] == {"cluster": "payment-v2.default", "percent": 10}
    assert by_path["/v2"]["retry"] == {"attempts": 4, "codes": [], "backoff": "100ms"}
    assert by_path["/v2"]["filters"]["request_mirror"]["percent"] == 12.5
    assert "retry" not in by_path["/all"]
    assert by_path["/all"]["filters"]["request_mirror"]["percent"] == 100


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


def test_unknown_instance() -> None:
    with pytest.raises(UnknownInstanceError):
        build_snapshot(SHOP, "nope")


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
            "cluster": "ledger.billing",
        },
        {
            "name": "upstream-16379",
            "address": "127.0.0.1:16379",
            "protocol": "tcp",
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
