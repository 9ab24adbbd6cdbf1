"""meshpy.rules builders make the same resources as the YAML a person would write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import yaml

from meshpy import rules
from meshpy.resources import Resource, ResourceError, parse
from meshpy.rules import Client


def from_yaml(text: str) -> Resource:
    return parse(yaml.safe_load(text))


ROUTE_HEAD = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: %s}
spec:
  parentRefs: [{group: "", kind: Service, name: %s}]
"""

CASES: list[tuple[str, Callable[[], Resource], str]] = [
    (
        "canary",
        lambda: rules.canary("payment", stable="v1", candidate="v2", weight=10),
        ROUTE_HEAD % ("payment", "payment")
        + """
  rules:
    - backendRefs:
        - {name: payment-v1, weight: 90}
        - {name: payment-v2, weight: 10}
""",
    ),
    (
        "canary named, in a namespace",
        lambda: rules.canary(
            "payment", stable="v1", candidate="v2", weight=0, name="pay", namespace="shop"
        ),
        """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: pay, namespace: shop}
spec:
  parentRefs: [{kind: Service, name: payment}]
  rules:
    - backendRefs: [{name: payment-v1, weight: 100}, {name: payment-v2, weight: 0}]
""",
    ),
    (
        "ab_test to the service",
        lambda: rules.ab_test("cart", header=("x-beta", "1"), to="v2"),
        ROUTE_HEAD % ("cart", "cart")
        + """
  rules:
    - matches: [{headers: [{name: x-beta, value: "1"}]}]
      backendRefs: [{name: cart-v2}]
    - backendRefs: [{name: cart}]
""",
    ),
    (
        "ab_test with a default version, headers and a query parameter",
        lambda: rules.ab_test(
            "cart",
            header={"x-beta": "1", "x-team": "a"},
            query=("beta", "on"),
            to="v2",
            default="v1",
        ),
        ROUTE_HEAD % ("cart", "cart")
        + """
  rules:
    - matches:
        - headers: [{name: x-beta, value: "1"}, {name: x-team, value: a}]
          queryParams: [{name: beta, value: "on"}]
      backendRefs: [{name: cart-v2}]
    - backendRefs: [{name: cart-v1}]
""",
    ),
    (
        "split",
        lambda: rules.split("svc", {"v1": 50, "v2": 30, "v3": 20}),
        ROUTE_HEAD % ("svc", "svc")
        + """
  rules:
    - backendRefs:
        - {name: svc-v1, weight: 50}
        - {name: svc-v2, weight: 30}
        - {name: svc-v3, weight: 20}
""",
    ),
    (
        "route to a version",
        lambda: rules.route("svc", "v3"),
        ROUTE_HEAD % ("svc", "svc") + "  rules: [{backendRefs: [{name: svc-v3}]}]\n",
    ),
    (
        "mirror a service",
        lambda: rules.mirror("payment", to="v2", percent=5),
        ROUTE_HEAD % ("payment", "payment")
        + """
  rules:
    - backendRefs: [{name: payment}]
      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: payment-v2}, percent: 5}
""",
    ),
    (
        "retry and timeout a canary",
        lambda: rules.timeout(
            rules.retry(
                rules.canary("payment", stable="v1", candidate="v2", weight=10),
                3,
                codes=[502, 503],
                backoff=timedelta(milliseconds=100),
            ),
            "5s",
            backend_request="1s",
        ),
        ROUTE_HEAD % ("payment", "payment")
        + """
  rules:
    - backendRefs:
        - {name: payment-v1, weight: 90}
        - {name: payment-v2, weight: 10}
      retry: {attempts: 3, codes: [502, 503], backoff: 100ms}
      timeouts: {request: 5s, backendRequest: 1s}
""",
    ),
    (
        "retry every rule of an A/B test",
        lambda: rules.retry(rules.ab_test("cart", header=("x-beta", "1"), to="v2"), 2),
        ROUTE_HEAD % ("cart", "cart")
        + """
  rules:
    - matches: [{headers: [{name: x-beta, value: "1"}]}]
      backendRefs: [{name: cart-v2}]
      retry: {attempts: 2}
    - backendRefs: [{name: cart}]
      retry: {attempts: 2}
""",
    ),
    (
        "allow",
        lambda: rules.allow(
            "payment",
            from_=["cart", "shop/checkout", "spiffe://meshpy.local/ns/ops/sa/admin"],
            paths=["/charge", "/refunds/*"],
            methods=["POST"],
        ),
        """\
apiVersion: policy.meshpy.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payment-allow}
spec:
  targetRefs: [{kind: Service, name: payment}]
  action: ALLOW
  rules:
    - sources:
        - {type: ServiceAccount, serviceAccount: {name: cart}}
        - {type: ServiceAccount, serviceAccount: {namespace: shop, name: checkout}}
        - {type: SPIFFE, spiffe: "spiffe://meshpy.local/ns/ops/sa/admin"}
      to: [{paths: ["/charge", "/refunds/*"], methods: [POST]}]
""",
    ),
    (
        "allow nobody",
        lambda: rules.allow("payment", from_=[]),
        """\
apiVersion: policy.meshpy.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payment-allow}
spec:
  targetRefs: [{kind: Service, name: payment}]
  action: ALLOW
  rules: [{sources: []}]
""",
    ),
    (
        "deny",
        lambda: rules.deny("payment", paths=["/admin/*"]),
        """\
apiVersion: policy.meshpy.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payment-deny}
spec:
  targetRefs: [{kind: Service, name: payment}]
  action: DENY
  rules: [{to: [{paths: ["/admin/*"]}]}]
""",
    ),
    (
        "load_balancer",
        lambda: rules.load_balancer("payment", "ring_hash", hash_header="x-user"),
        """\
apiVersion: policy.meshpy.io/v1alpha1
kind: BackendPolicy
metadata: {name: payment}
spec:
  targetRefs: [{kind: Service, name: payment}]
  loadBalancer: {type: ring_hash, hashOn: {header: x-user}}
""",
    ),
    (
        "load_balancer with the rest of the policy",
        lambda: rules.load_balancer(
            "payment",
            "peak_ewma",
            outlier_detection={"consecutive5xx": 3, "baseEjectionTime": "10s"},
            connectionLimits={"maxRequests": 100},
            slow_start={"window": "30s"},
            fault_injection={"abort": {"percent": 1, "status": 503}},
            retry_budget=None,
        ),
        """\
apiVersion: policy.meshpy.io/v1alpha1
kind: BackendPolicy
metadata: {name: payment}
spec:
  targetRefs: [{kind: Service, name: payment}]
  loadBalancer: {type: peak_ewma}
  outlierDetection: {consecutive5xx: 3, baseEjectionTime: 10s}
  connectionLimits: {maxRequests: 100}
  slowStart: {window: 30s}
  faultInjection: {abort: {percent: 1, status: 503}}
""",
    ),
    (
        "load_balancer by source IP",
        lambda: rules.load_balancer("payment", "maglev", hash_source_ip=True, name="lb"),
        """\
apiVersion: policy.meshpy.io/v1alpha1
kind: BackendPolicy
metadata: {name: lb}
spec:
  targetRefs: [{kind: Service, name: payment}]
  loadBalancer: {type: maglev, hashOn: {sourceIP: true}}
""",
    ),
]


@pytest.mark.parametrize(("built", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_builder_equals_the_yaml(built: Callable[[], Resource], expected: str) -> None:
    resource = built()
    assert resource == from_yaml(expected)
    assert yaml.safe_dump(resource.to_document()) == yaml.safe_dump(
        from_yaml(expected).to_document()
    )


BAD: list[tuple[Callable[[], object], str, str]] = [
    (
        lambda: rules.canary("p", stable="v1", candidate="v2", weight=120),
        "spec.rules[0].backendRefs[1].weight",
        "percentage from 0 to 100",
    ),
    (lambda: rules.split("p", {"v1": -1}), "spec.rules[0].backendRefs[0].weight", "at least 0"),
    (lambda: rules.split("p", {}), "spec.rules[0].backendRefs", "at least one version"),
    (
        lambda: rules.ab_test("c", header=("bad name", "1"), to="v2"),
        "spec.rules[0].matches[0].headers[0].name",
        "not a valid HTTP header name",
    ),
    (lambda: rules.ab_test("c", to="v2"), "spec.rules[0].matches[0]", "header or a query"),
    (lambda: rules.route("Bad_Name"), "metadata.name", "not a valid name"),
    (
        lambda: rules.allow("x", from_=["Bad"]),
        "spec.rules[0].sources[0].serviceAccount.name",
        "not a service account",
    ),
    (
        lambda: rules.allow("x", methods=["get"]),
        "spec.rules[0].to[0].methods[0]",
        "must be",
    ),
    (
        lambda: rules.load_balancer("x", "ring_hash"),
        "spec.loadBalancer.hashOn",
        "required for type ring_hash",
    ),
    (lambda: rules.load_balancer("x", "fastest"), "spec.loadBalancer.type", "must be"),
    (lambda: rules.load_balancer("x", slow_starts={}), "spec.slowStarts", "unknown field"),
    (
        lambda: rules.load_balancer("x", fault_injection={}),
        "spec.faultInjection",
        "give delay, abort or both",
    ),
    (lambda: rules.timeout("x", "5"), "spec.rules[0].timeouts.request", "invalid duration"),
    (lambda: rules.timeout("x"), "spec.rules[0].timeouts", "give request"),
    (
        lambda: rules.timeout("x", "1s", backend_request="2s"),
        "spec.rules[0].timeouts.backendRequest",
        "must not be longer than request",
    ),
    (lambda: rules.retry("x", -1), "spec.rules[0].retry.attempts", "at least 0"),
    (
        lambda: rules.mirror("x", to="v2", percent=101),
        "spec.rules[0].filters[0].requestMirror.percent",
        "at most 100",
    ),
]


@pytest.mark.parametrize(("build", "path", "message"), BAD)
def test_bad_input_raises_the_resource_error_of_yaml(
    build: Callable[[], object], path: str, message: str | None
) -> None:
    with pytest.raises(ResourceError) as caught:
        build()
    assert caught.value.path == path
    if message:
        assert message in caught.value.message


def test_the_same_error_as_the_yaml() -> None:
    with pytest.raises(ResourceError) as built:
        rules.split("svc", {"v1": "50"})  # type: ignore[dict-item]
    document = (
        ROUTE_HEAD % ("svc", "svc") + '  rules: [{backendRefs: [{name: svc-v1, weight: "50"}]}]\n'
    )
    with pytest.raises(ResourceError) as parsed:
        from_yaml(document)
    assert str(built.value) == str(parsed.value)


def test_modifiers_take_routes_only() -> None:
    with pytest.raises(TypeError, match="HTTPRoute"):
        rules.retry(rules.load_balancer("x"), 2)


def test_a_dry_run_client_records_and_sends_nothing() -> None:
    route = rules.canary("payment", stable="v1", candidate="v2", weight=10)
    client = Client("http://127.0.0.1:9", "t", namespace="shop", dry_run=True)
    applied = client.apply(route, rules.allow("payment", namespace="other"))
    assert [(a.kind, a.namespace, a.name, a.result) for a in applied] == [
        ("HTTPRoute", "shop", "payment", "dry-run"),
        ("AuthorizationPolicy", "other", "payment-allow", "dry-run"),
    ]
    assert client.delete(("hr", "old")) == [True]
    assert [(r.action, r.kind, r.namespace, r.name) for r in client.recorded] == [
        ("apply", "HTTPRoute", "shop", "payment"),
        ("apply", "AuthorizationPolicy", "other", "payment-allow"),
        ("delete", "HTTPRoute", "shop", "old"),
    ]
    document = client.recorded[0].document
    assert document is not None
    assert parse(document) == rules.canary(
        "payment", stable="v1", candidate="v2", weight=10, namespace="shop"
    )


def test_a_session_sets_every_clients_defaults() -> None:
    with rules.session("http://example.test:1", "secret", dry_run=True) as current:
        client = Client()
        client.apply(rules.route("a"))
        Client(dry_run=False).apply(rules.route("b"))
    assert (client.server, client.token, client.dry_run) == (
        "http://example.test:1",
        "secret",
        True,
    )
    assert [r.name for r in current.recorded] == ["a", "b"]
    assert Client("http://x:1").dry_run is False


def test_an_unreachable_server_is_an_api_error() -> None:
    with Client("http://127.0.0.1:9", "t") as client, pytest.raises(rules.ApiError) as caught:
        client.apply(rules.route("a"))
    assert caught.value.status == 0
    assert "cannot reach the control plane" in str(caught.value)
