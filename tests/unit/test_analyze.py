"""meshpy.analyze: each code, found (or not) in tables of small resources."""

from __future__ import annotations

import pytest
import yaml

from meshpy.analyze import CODES, Finding, analyze, has_errors
from meshpy.resources import Resource, parse

SERVICES = {
    ("default", "cart"),
    ("default", "cart-v1"),
    ("default", "cart-v2"),
    ("default", "payment"),
    ("shop", "orders"),
}


def route(rules: str, name: str = "cart", parent: str = "{kind: Service, name: cart}") -> Resource:
    text = f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{parent}]
  rules: {rules}
"""
    return parse(yaml.safe_load(text))


def policy(kind: str, targets: str, extra: str = "") -> Resource:
    text = f"""\
apiVersion: policy.meshpy.io/v1alpha1
kind: {kind}
metadata: {{name: p}}
spec:
  targetRefs: [{targets}]
  {extra}
"""
    return parse(yaml.safe_load(text))


CATCH_ALL = "{backendRefs: [{name: cart}]}"

# (case, resources, expected [(code, resource, path)])
TABLE: list[tuple[str, list[Resource], list[tuple[str, str, str]]]] = [
    ("a plain route is fine", [route(f"[{CATCH_ALL}]")], []),
    (
        "MP001 missing backend",
        [route("[{backendRefs: [{name: cart-v1}, {name: cart-v3}]}]")],
        [("MP001", "HTTPRoute default/cart", "spec.rules[0].backendRefs[1]")],
    ),
    (
        "MP001 backend in another namespace that exists is fine",
        [route("[{backendRefs: [{name: orders, namespace: shop}]}]")],
        [],
    ),
    (
        "MP001 missing mirror target",
        [
            route(
                "[{backendRefs: [{name: cart}], filters: [{type: RequestMirror, "
                "requestMirror: {backendRef: {name: cart-shadow}}}]}]"
            )
        ],
        [("MP001", "HTTPRoute default/cart", "spec.rules[0].filters[0].requestMirror.backendRef")],
    ),
    (
        "MP002 all weights zero",
        [route("[{backendRefs: [{name: cart-v1, weight: 0}, {name: cart-v2, weight: 0}]}]")],
        [("MP002", "HTTPRoute default/cart", "spec.rules[0]")],
    ),
    (
        "MP002 one weight zero is fine",
        [route("[{backendRefs: [{name: cart, weight: 0}, {name: cart-v1}]}]")],
        [],
    ),
    ("MP002 no backends", [route("[{}]")], [("MP002", "HTTPRoute default/cart", "spec.rules[0]")]),
    (
        "MP003 a catch-all before a catch-all",
        [route(f"[{CATCH_ALL}, {{backendRefs: [{{name: cart-v1}}]}}]")],
        [("MP003", "HTTPRoute default/cart", "spec.rules[1]")],
    ),
    (
        "MP003 same prefix, trailing slash ignored, header names any case",
        [
            route(
                "[{matches: [{path: {value: /api/}, headers: [{name: X-Beta, value: '1'}]}], "
                "backendRefs: [{name: cart-v2}]}, "
                "{matches: [{path: {value: /api}, headers: [{name: x-beta, value: '1'}]}], "
                f"backendRefs: [{{name: cart-v1}}]}}, {CATCH_ALL}]"
            )
        ],
        [("MP003", "HTTPRoute default/cart", "spec.rules[1]")],
    ),
    (
        "MP003 a regular expression header that accepts the later exact value",
        [
            route(
                "[{matches: [{headers: [{type: RegularExpression, name: x-user, value: 'a.*'}]}], "
                "backendRefs: [{name: cart-v2}]}, "
                "{matches: [{headers: [{name: x-user, value: alice}]}], "
                f"backendRefs: [{{name: cart-v1}}]}}, {CATCH_ALL}]"
            )
        ],
        [("MP003", "HTTPRoute default/cart", "spec.rules[1]")],
    ),
    (
        "MP003 not when the later rule is more specific (precedence wins)",
        [
            route(
                f"[{CATCH_ALL}, "
                "{matches: [{path: {value: /api}}], backendRefs: [{name: cart-v1}]}, "
                "{matches: [{headers: [{name: x-beta, value: '1'}]}], "
                "backendRefs: [{name: cart-v2}]}, "
                "{matches: [{method: POST}], backendRefs: [{name: cart-v2}]}, "
                "{matches: [{path: {type: Exact, value: /}}], backendRefs: [{name: cart-v2}]}]"
            )
        ],
        [],
    ),
    (
        "MP003 not when one of the later rule's matches still wins",
        [
            route(
                f"[{CATCH_ALL}, {{matches: [{{path: {{value: /}}}}, {{path: {{value: /api}}}}], "
                "backendRefs: [{name: cart-v1}]}]"
            )
        ],
        [],
    ),
    (
        "MP004 no catch-all",
        [route("[{matches: [{path: {value: /api}}], backendRefs: [{name: cart}]}]")],
        [("MP004", "Service default/cart", "")],
    ),
    (
        "MP004 a catch-all in another route of the service is enough",
        [
            route("[{matches: [{path: {value: /api}}], backendRefs: [{name: cart}]}]"),
            route(f"[{CATCH_ALL}]", name="cart-rest"),
        ],
        [],
    ),
    (
        "MP004 per port: the port-less catch-all covers a port's route",
        [
            route(
                "[{matches: [{path: {value: /api}}], backendRefs: [{name: cart}]}]",
                parent="{kind: Service, name: cart, port: 8080}",
            ),
            route(f"[{CATCH_ALL}]", name="cart-rest"),
        ],
        [],
    ),
    (
        "MP004 a header match is not a catch-all",
        [
            route(
                "[{matches: [{headers: [{name: x-beta, value: '1'}]}], "
                "backendRefs: [{name: cart}]}]"
            )
        ],
        [("MP004", "Service default/cart", "")],
    ),
    (
        "MP005 policy targeting nothing",
        [policy("BackendPolicy", "{kind: Service, name: gone}")],
        [("MP005", "BackendPolicy default/p", "spec.targetRefs")],
    ),
    (
        "MP005 not when one target exists",
        [
            policy(
                "AuthorizationPolicy",
                "{kind: Service, name: gone}, {kind: Service, name: payment}",
                "action: ALLOW",
            )
        ],
        [],
    ),
    (
        "several codes, in resource order",
        [
            policy("AuthorizationPolicy", "{kind: Service, name: gone}", "action: DENY"),
            route(
                "[{matches: [{path: {value: /a}}], backendRefs: [{name: nope, weight: 0}]}]",
                parent="{kind: Service, name: payment}",
                name="pay",
            ),
        ],
        [
            ("MP005", "AuthorizationPolicy default/p", "spec.targetRefs"),
            ("MP001", "HTTPRoute default/pay", "spec.rules[0].backendRefs[0]"),
            ("MP002", "HTTPRoute default/pay", "spec.rules[0]"),
            ("MP004", "Service default/payment", ""),
        ],
    ),
]


@pytest.mark.parametrize(
    ("resources", "expected"), [c[1:] for c in TABLE], ids=[c[0] for c in TABLE]
)
def test_codes(resources: list[Resource], expected: list[tuple[str, str, str]]) -> None:
    found = analyze(resources, SERVICES)
    assert [(f.code, f.resource, f.path) for f in found] == expected


def test_without_services_the_service_checks_are_skipped() -> None:
    resources = [
        route("[{backendRefs: [{name: nowhere}]}]"),
        policy("BackendPolicy", "{kind: Service, name: gone}"),
    ]
    assert analyze(resources, None) == []
    assert [f.code for f in analyze(resources, set())] == ["MP001", "MP005"]


@pytest.mark.parametrize(
    ("codes", "errors"),
    [
        ([], False),
        (["MP003", "MP004", "MP005"], False),
        (["MP004", "MP001"], True),
        (["MP002"], True),
    ],
)
def test_errors_and_warnings(codes: list[str], errors: bool) -> None:
    assert has_errors([Finding(code, "r", "m") for code in codes]) is errors


def test_codes_are_stable() -> None:
    assert {code: severity for code, (severity, _) in CODES.items()} == {
        "MP000": "error",
        "MP001": "error",
        "MP002": "error",
        "MP003": "warning",
        "MP004": "warning",
        "MP005": "warning",
    }


def test_messages_say_what_happens() -> None:
    found = analyze(
        [route("[{matches: [{path: {value: /a}}], backendRefs: [{name: cart, weight: 0}]}]")],
        SERVICES,
    )
    messages = {f.code: f.message for f in found}
    assert "weight 0" in messages["MP002"]
    assert "404" in messages["MP004"]
    assert found[0].as_dict() == {
        "code": "MP002",
        "severity": "error",
        "resource": "HTTPRoute default/cart",
        "path": "spec.rules[0]",
        "message": messages["MP002"],
    }
