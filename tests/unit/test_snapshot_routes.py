"""Snapshot virtual hosts: host names, and rules from the HTTPRoutes attached to a service."""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshpy.resources import HTTPPathMatch, HTTPRouteSpec, compute_status
from meshpy.snapshot import UNRESOLVED_CLUSTER, build_snapshot
from meshpy.snapshot.routes import RuleOrigin, rule_origins
from tests.unit.snapshots import (
    CATCH_ALL,
    SHOP,
    addresses,
    clusters,
    listener,
    route,
    to_payment,
    vhost,
)


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
    services = state.service_index()
    payment = ("default", "payment")
    assert rule_origins(state.routes, services, "default", payment) == [RuleOrigin(producer, 0)]
    assert rule_origins(state.routes, services, "billing", payment) == [RuleOrigin(consumer, 0)]
    # A service no route attaches to has its own rule.
    assert rule_origins(state.routes, services, "default", ("default", "cart")) == [
        RuleOrigin(None, 0)
    ]


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
    # The rule left out leaves no gap in where the rules sent come from.
    assert rule_origins((stored,), SHOP.service_index(), "default", ("default", "payment")) == [
        RuleOrigin(stored, 1)
    ]
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


def test_a_tcp_service_has_a_cluster_but_no_virtual_host() -> None:
    snap = build_snapshot(SHOP, "redis-1")
    assert addresses(clusters(snap)["redis.default"]) == ["10.0.0.9:16379"]
    names = [v["name"] for v in listener(snap, "outbound")["routes"]]
    assert "redis.default" not in names
    assert listener(snap, "inbound")["protocol"] == "tcp"


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
