"""``meshpy.explain``: one request through the shop mesh, explained from its state.

The decisions are the core's (``_core.explain``); these tests pin what the answer names:
the HTTPRoute rule and the matches passed over, the backends and their BackendPolicy, the
destinations by version and the AuthorizationPolicy rule that decided for each.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from meshpy.explain import ExplainError, ExplainRequest, Explanation, explain, words
from meshpy.resources import Resource, parse
from meshpy.snapshot import MeshIdentity, MeshState
from tests.unit.snapshots import SHOP, backend_policy, inst, to_payment

MESH = MeshIdentity(trust_domain="meshpy.local")
CART = "spiffe://meshpy.local/ns/default/sa/cart"


def ask(state: MeshState, method: str, path: str, **fields: Any) -> Explanation:
    """Explain ``method path`` from cart to payment (or as ``fields`` say)."""
    question = {
        "source": {"service": "cart"},
        "destination": {"service": "payment"},
        "method": method,
        "path": path,
        **fields,
    }
    return explain(state, ExplainRequest.model_validate(question))


def authz(name: str, target: str, action: str, rules: list[dict[str, Any]]) -> Resource:
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": target}],
                "action": action,
                "rules": rules,
            },
        }
    )


CANARY = to_payment(
    {
        "matches": [{"path": {"type": "PathPrefix", "value": "/charge"}, "method": "POST"}],
        "backendRefs": [{"name": "payment-v2"}],
    },
    {
        "matches": [{"headers": [{"name": "x-beta", "value": "1"}]}],
        "backendRefs": [{"name": "payment-v2"}],
    },
    {
        "backendRefs": [{"name": "payment-v1", "weight": 90}, {"name": "payment-v2", "weight": 10}],
        "timeouts": {"request": "2s", "backendRequest": "500ms"},
        "retry": {"attempts": 3, "codes": [503, 502]},
    },
    name="payment",
)


def test_the_rule_followed_and_the_matches_passed_over_are_named_by_route() -> None:
    state = replace(SHOP, routes=(CANARY,))
    answer = ask(state, "GET", "/charge?dry=1")
    route = answer.route
    assert route.virtual_host == "payment.default"
    assert route.matched is not None
    assert route.matched.model_dump() == {
        "route": "default/payment",
        "rule": 2,
        "match": 0,
        "conditions": ["path PathPrefix /"],
    }
    assert [(s.rule, s.failed) for s in route.skipped] == [
        (0, "method POST"),
        (1, "header x-beta = 1"),
    ]
    assert (route.timeout, route.backend_timeout) == ("2s", "500ms")
    assert route.retry is not None
    assert route.retry.model_dump() == {"attempts": 3, "codes": [502, 503], "backoff": "25ms"}
    assert answer.refused is None
    assert [(b.cluster, b.weight, b.share, b.endpoints) for b in answer.backends] == [
        ("payment-v1.default", 90, 90.0, 2),
        ("payment-v2.default", 10, 10.0, 1),
    ]
    assert answer.request.model_dump() == {
        "method": "GET",
        "path": "/charge",
        "query": "dry=1",
        "headers": [],
    }


def test_rules_of_several_routes_are_named_by_their_own_route_and_index() -> None:
    first = to_payment(
        {
            "matches": [{"path": {"type": "Exact", "value": "/a"}}],
            "backendRefs": [{"name": "payment-v1"}],
        },
        name="first",
    )
    second = to_payment(
        {
            "matches": [{"path": {"type": "Exact", "value": "/b"}}],
            "backendRefs": [{"name": "payment-v1"}],
        },
        {
            "matches": [
                {"path": {"type": "Exact", "value": "/c"}},
                {"path": {"type": "Exact", "value": "/d"}},
            ],
            "backendRefs": [{"name": "payment-v2"}],
        },
        name="second",
    )
    state = replace(SHOP, routes=(first, second))
    matched = ask(state, "GET", "/d").route.matched
    assert matched is not None
    assert (matched.route, matched.rule, matched.match) == ("default/second", 1, 1)
    assert matched.conditions == ["path Exact /d"]
    missed = ask(state, "GET", "/e")
    assert missed.route.matched is None
    assert [(s.route, s.rule, s.match) for s in missed.route.skipped] == [
        ("default/first", 0, 0),
        ("default/second", 0, 0),
        ("default/second", 1, 0),
        ("default/second", 1, 1),
    ]
    assert missed.refused is not None
    assert (missed.refused.status, missed.refused.reason) == (404, "no_route")
    assert missed.backends == []


def test_a_service_without_routes_follows_its_own_rule_to_its_cluster() -> None:
    answer = ask(SHOP, "DELETE", "/anything")
    matched = answer.route.matched
    assert matched is not None
    assert (matched.route, matched.rule, matched.conditions) == (None, 0, ["path PathPrefix /"])
    [backend] = answer.backends
    assert (backend.cluster, backend.service, backend.weight, backend.share) == (
        "payment.default",
        "payment",
        1,
        100.0,
    )
    # The cluster holds both versions: each is a destination of its own.
    assert [(d.version, d.instances) for d in backend.destinations] == [
        ("v1", ["pay-1", "pay-2"]),
        ("v2", ["pay-3"]),
    ]
    assert answer.route.retry is None
    assert answer.route.timeout == "15s"


def test_the_backend_policy_in_force_is_named_and_version_services_inherit_it() -> None:
    state = replace(SHOP, routes=(CANARY,), backend_policies=(backend_policy("payment", "maglev"),))
    answer = ask(state, "GET", "/")
    for backend in answer.backends:
        assert backend.policy.model_dump() == {
            "name": "default/payment-maglev",
            "load_balancer": "maglev",
            "settings": {
                "hash_on": {"header": "x-user"},
                "retry_budget": {"percent": 20, "min_retries_per_second": 10},
            },
        }
    plain = ask(SHOP, "GET", "/").backends[0].policy
    assert (plain.name, plain.load_balancer, plain.settings) == (None, "peak_ewma", {})


def test_each_destination_says_which_policy_rule_decided() -> None:
    state = replace(
        SHOP,
        routes=(CANARY,),
        identity=MESH,
        authorization_policies=(
            authz(
                "payment-callers",
                "payment",
                "ALLOW",
                [
                    {"sources": [{"type": "ServiceAccount", "serviceAccount": {"name": "ops"}}]},
                    {
                        "sources": [{"type": "ServiceAccount", "serviceAccount": {"name": "cart"}}],
                        "to": [{"paths": ["/charge", "/refunds/*"], "methods": ["GET"]}],
                    },
                ],
            ),
            authz("no-v2", "payment-v2", "DENY", [{"to": [{"paths": ["/charge"]}]}]),
            authz("audit-all", "payment", "AUDIT", [{}]),
        ),
    )
    answer = ask(state, "GET", "/charge")
    assert answer.source.identity == CART
    decisions = {d.version: d.authorization for b in answer.backends for d in b.destinations}
    v1, v2 = decisions["v1"], decisions["v2"]
    assert (v1.allowed, v1.by, v1.policy, v1.action, v1.rule) == (
        True,
        "policy",
        "default/payment-callers",
        "allow",
        1,
    )
    assert v1.rule_text == f"from {CART} to GET /charge, /refunds/*"
    assert v1.audited == ["default/audit-all"]
    assert v1.why == (
        f"rule 1 of ALLOW policy default/payment-callers (from {CART} to GET /charge, "
        "/refunds/*) matches: it allows the request"
    )
    assert (v2.allowed, v2.policy, v2.action, v2.rule) == (False, "default/no-v2", "deny", 0)
    refused = {d.version: d.refused for b in answer.backends for d in b.destinations}
    assert refused["v1"] is None
    assert refused["v2"] is not None
    assert (refused["v2"].status, refused["v2"].reason) == (403, "unauthorized")

    posted = ask(state, "POST", "/refunds/7").backends[0].destinations[0].authorization
    assert (posted.allowed, posted.by, posted.policy, posted.rule) == (
        False,
        "no_allow_match",
        None,
        None,
    )
    assert posted.why == (
        "ALLOW policies apply to these instances (default/payment-callers) and no rule of "
        f"theirs matches {CART} POST /refunds/7"
    )


@pytest.mark.parametrize(
    ("default", "allowed", "why"),
    [
        (
            "all-unauthenticated",
            True,
            "no AuthorizationPolicy applies to these instances and the mesh default, "
            "all-unauthenticated, allows everyone",
        ),
        (
            "all-authenticated",
            True,
            f"no policy decides: the mesh default, all-authenticated, allows {CART}",
        ),
        ("deny", False, f"no policy decides: the mesh default, deny, refuses {CART}"),
    ],
)
def test_without_policies_the_mesh_default_decides(default: str, allowed: bool, why: str) -> None:
    state = replace(SHOP, identity=MeshIdentity(trust_domain="meshpy.local", authz_default=default))  # type: ignore[arg-type]
    [destination, *_] = ask(state, "GET", "/").backends[0].destinations
    decision = destination.authorization
    assert (decision.allowed, decision.by, decision.default, decision.why) == (
        allowed,
        "default",
        default,
        why,
    )
    assert (destination.refused is None) == allowed


def test_a_plaintext_caller_has_no_identity_to_be_allowed_by() -> None:
    state = replace(
        SHOP,
        authorization_policies=(
            authz(
                "cart-only",
                "payment",
                "ALLOW",
                [{"sources": [{"type": "ServiceAccount", "serviceAccount": {"name": "cart"}}]}],
            ),
        ),
    )
    answer = ask(state, "GET", "/")
    assert answer.source.identity is None
    decision = answer.backends[0].destinations[0].authorization
    assert (decision.allowed, decision.by) == (False, "no_allow_match")
    assert "an unauthenticated caller GET /" in decision.why


def test_destinations_decide_on_the_path_as_rewritten_and_normalised() -> None:
    rewrite = to_payment(
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {
                        "hostname": "pay.internal",
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"},
                    },
                }
            ],
            "backendRefs": [{"name": "payment-v1"}],
        },
        name="payment",
    )
    state = replace(
        SHOP,
        routes=(rewrite,),
        identity=MESH,
        authorization_policies=(
            authz("new-only", "payment", "ALLOW", [{"to": [{"paths": ["/new/*"]}]}]),
        ),
    )
    answer = ask(state, "GET", "/old/a/../b?x=1")
    [backend] = answer.backends
    assert (backend.path, backend.host) == ("/new/a/../b", "pay.internal")
    [destination] = backend.destinations
    assert destination.path == "/new/b"
    assert destination.authorization.allowed


def test_a_backend_without_endpoints_or_weight_is_said_so() -> None:
    empty = replace(SHOP, instances=tuple(i for i in SHOP.instances if i.service != "payment"))
    [backend] = ask(empty, "GET", "/").backends
    assert backend.refused is not None
    assert (backend.refused.status, backend.refused.reason, backend.destinations) == (
        503,
        "no_endpoints",
        [],
    )
    drained = to_payment(
        {
            "backendRefs": [
                {"name": "payment-v1", "weight": 0},
                {"name": "payment-v2", "weight": 1},
            ]
        }
    )
    backends = ask(replace(SHOP, routes=(drained,)), "GET", "/").backends
    assert [(b.weight, b.share, len(b.destinations)) for b in backends] == [
        (0, 0.0, 0),
        (1, 100.0, 1),
    ]


def test_an_instance_without_an_app_has_nothing_listening_for_it() -> None:
    lone = replace(
        SHOP,
        instances=(*SHOP.instances, inst("worker-1", "worker", "10.0.0.11", app_port=None)),
    )
    [backend] = ask(lone, "GET", "/", destination={"service": "worker"}).backends
    [destination] = backend.destinations
    assert destination.refused is not None
    assert (destination.refused.status, destination.refused.reason) == (502, "connect_failed")


def test_another_namespace_is_called_by_its_qualified_name() -> None:
    answer = ask(SHOP, "GET", "/", destination={"service": "ledger", "namespace": "billing"})
    assert answer.destination.host == "ledger.billing"
    assert answer.route.virtual_host == "ledger.billing"
    assert answer.backends[0].destinations[0].instances == ["ledger-1"]


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"source": {"service": "carts"}}, "source.service", "no service default/carts"),
        (
            {"destination": {"service": "ledger"}},
            "destination.service",
            "no service default/ledger",
        ),
        (
            {"source": {"service": "ledger"}},
            "source.service",
            "no service default/ledger",
        ),
    ],
)
def test_unknown_services_are_refused_by_field(
    fields: dict[str, Any], path: str, message: str
) -> None:
    with pytest.raises(ExplainError) as info:
        ask(SHOP, "GET", "/", **fields)
    assert (info.value.path, info.value.message) == (path, message)


@pytest.mark.parametrize(
    ("match", "conditions"),
    [
        (None, ["any request"]),
        ({}, ["any request"]),
        (
            {
                "path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"},
                "method": "PUT",
                "headers": [{"name": "x-v", "value": "b.*", "type": "RegularExpression"}],
                "query_params": [{"name": "dry", "value": "1"}],
            },
            [
                "path RegularExpression /v[0-9]+/.*",
                "method PUT",
                "header x-v ~ b.*",
                "query dry = 1",
            ],
        ),
    ],
)
def test_route_conditions_in_words(match: Any, conditions: list[str]) -> None:
    assert words.match_conditions(match) == conditions


def test_a_failed_condition_is_named_by_its_index() -> None:
    match: Any = {
        "path": {"type": "PathPrefix", "value": "/a"},
        "headers": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}],
        "query_params": [{"name": "q", "value": "v"}],
    }
    cases = [
        ({"condition": "path"}, "path PathPrefix /a"),
        ({"condition": "header", "index": 1}, "header x-b = 2"),
        ({"condition": "query", "index": 0}, "query q = v"),
    ]
    for failed, said in cases:
        assert words.failed_condition(match, failed) == said


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        ({}, "from any caller to any request"),
        ({"sources": [], "to": []}, "from nobody to no request"),
        (
            {
                "sources": [
                    {"identity": CART},
                    {"identity_prefix": "spiffe://meshpy.local/ns/ops/sa/"},
                ],
                "to": [{"methods": ["POST"]}, {"paths": [{"exact": "/a"}, {"prefix": "/b/"}]}],
            },
            f"from {CART}, spiffe://meshpy.local/ns/ops/sa/* to POST any path; any method /a, /b/*",
        ),
    ],
)
def test_authorization_rules_in_words(rule: Any, said: str) -> None:
    assert words.authz_rule(rule) == said
