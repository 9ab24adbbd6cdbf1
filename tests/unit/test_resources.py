"""Resources parse from YAML, JSON and Python into one model, with Gateway API defaults."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import yaml

from meshpy import resources
from meshpy.resources import (
    AuthorizationPolicySpec,
    BackendPolicySpec,
    HTTPBackendRef,
    HTTPPathMatch,
    HTTPRouteMatch,
    HTTPRouteRule,
    HTTPRouteSpec,
    HTTPRouteTimeouts,
    ParentReference,
    PolicyTargetReference,
    Resource,
    format_gateway_duration,
    kind_info,
    parse,
    parse_gateway_duration,
    parse_stream,
)

CANARY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: payment-canary
  namespace: default
  labels: {app.kubernetes.io/part-of: shop, tier: backend}
  annotations: {example.com/owner: payments-team}
  uid: 6c1b2a0e-7d3b-4a51-9b7e-0f2a4c1d9e88
  resourceVersion: "1234"
  generation: 3
  creationTimestamp: 2024-05-01T10:00:00Z
  managedFields: [{manager: kubectl}]
spec:
  parentRefs:
    - group: ""
      kind: Service
      name: payment
      port: 8080
  hostnames: [payment.example.com]
  rules:
    - name: beta-users
      matches:
        - path: {type: PathPrefix, value: /charge}
          headers: [{name: x-beta, value: "1"}]
          queryParams: [{name: debug, value: "yes"}]
          method: POST
      backendRefs:
        - {name: payment-v2, port: 8080}
      timeouts: {request: 10s, backendRequest: 2s}
      retry: {attempts: 2, codes: [502, 503], backoff: 100ms}
    - backendRefs:
        - {name: payment-v1, port: 8080, weight: 90}
        - {name: payment-v2, port: 8080, weight: 10}
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: x-route, value: canary}]
            remove: [x-debug]
        - type: RequestMirror
          requestMirror:
            backendRef: {name: payment-shadow, port: 8080}
            percent: 5
status:
  parents: []
"""


def test_a_gamma_canary_parses_with_its_metadata() -> None:
    [route] = parse_stream(CANARY)
    assert route.kind == "HTTPRoute"
    assert route.api_version == "gateway.networking.k8s.io/v1"
    assert (route.namespace, route.name) == ("default", "payment-canary")
    assert route.labels == {"app.kubernetes.io/part-of": "shop", "tier": "backend"}
    assert route.annotations == {"example.com/owner": "payments-team"}
    spec = route.spec
    assert isinstance(spec, HTTPRouteSpec)
    assert spec.parent_refs == [ParentReference(kind="Service", name="payment", port=8080)]
    first, second = spec.rules
    assert first.matches[0].headers[0].name == "x-beta"
    assert first.matches[0].method == "POST"
    assert first.timeouts == HTTPRouteTimeouts(
        request=timedelta(seconds=10), backend_request=timedelta(seconds=2)
    )
    assert first.retry is not None
    assert first.retry.backoff == timedelta(milliseconds=100)
    assert [(b.name, b.weight) for b in second.backend_refs] == [
        ("payment-v1", 90),
        ("payment-v2", 10),
    ]
    assert second.matches == [HTTPRouteMatch(path=HTTPPathMatch(type="PathPrefix", value="/"))]


def test_spec_dict_is_canonical_with_defaults_filled() -> None:
    route = parse(yaml.safe_load(CANARY))
    spec = route.spec_dict()
    assert spec["parentRefs"] == [{"group": "", "kind": "Service", "name": "payment", "port": 8080}]
    first, second = spec["rules"]
    assert first["matches"][0]["headers"] == [{"type": "Exact", "name": "x-beta", "value": "1"}]
    assert first["matches"][0]["queryParams"] == [
        {"type": "Exact", "name": "debug", "value": "yes"}
    ]
    assert first["timeouts"] == {"request": "10s", "backendRequest": "2s"}
    assert first["retry"] == {"codes": [502, 503], "attempts": 2, "backoff": "100ms"}
    assert first["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "payment-v2", "port": 8080, "weight": 1}
    ]
    assert second["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert second["filters"][0] == {
        "type": "RequestHeaderModifier",
        "requestHeaderModifier": {
            "set": [{"name": "x-route", "value": "canary"}],
            "remove": ["x-debug"],
        },
    }
    assert json.loads(json.dumps(spec)) == spec


def test_to_document_reads_back_to_the_same_resource() -> None:
    route = parse(yaml.safe_load(CANARY))
    status = {"parents": []}
    doc = route.to_document(status=status, generation=4)
    assert doc["metadata"]["generation"] == 4
    assert doc["status"] == status
    assert "uid" not in doc["metadata"]
    again = parse(json.loads(json.dumps(doc)))
    assert again == route
    assert parse(again.to_document()).spec_dict() == route.spec_dict()


def test_a_minimal_route_gets_the_gateway_api_defaults() -> None:
    route = parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"kind": "Service", "name": "payment"}]},
        }
    )
    assert route.namespace is None
    assert route.effective_namespace == "default"
    assert route.spec_dict() == {
        "parentRefs": [{"group": "", "kind": "Service", "name": "payment"}],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
    }


@pytest.mark.parametrize(
    "matches",
    [[], [{}], [{"path": {}}], [{"path": {"type": "PathPrefix"}}]],
    ids=["empty-list", "empty-match", "empty-path", "type-only"],
)
def test_matches_default_to_path_prefix_slash(matches: list[dict[str, Any]]) -> None:
    spec = HTTPRouteSpec.model_validate({"rules": [{"matches": matches}]})
    assert spec.rules[0].matches == [HTTPRouteMatch()]
    assert spec.rules[0].matches[0].path == HTTPPathMatch(type="PathPrefix", value="/")


def test_v1beta1_routes_are_read_as_v1() -> None:
    doc = yaml.safe_load(CANARY)
    doc["apiVersion"] = "gateway.networking.k8s.io/v1beta1"
    assert parse(doc).api_version == "gateway.networking.k8s.io/v1"


def test_python_builders_make_the_same_resource_as_yaml() -> None:
    spec = HTTPRouteSpec(
        parent_refs=[ParentReference.service("payment")],
        rules=[
            HTTPRouteRule(
                backend_refs=[
                    HTTPBackendRef(name="payment-v1", weight=90),
                    HTTPBackendRef(name="payment-v2", weight=10),
                ],
                timeouts=HTTPRouteTimeouts(request=timedelta(seconds=5)),
            )
        ],
    )
    built = Resource.of(spec, name="canary", namespace="default", labels={"team": "pay"})
    parsed = parse_stream(
        """
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: canary, namespace: default, labels: {team: pay}}
        spec:
          parentRefs: [{kind: Service, name: payment}]
          rules:
            - backendRefs: [{name: payment-v1, weight: 90}, {name: payment-v2, weight: 10}]
              timeouts: {request: 5s}
        """.replace("\n        ", "\n")
    )
    assert parsed == [built]
    assert built.spec_dict()["rules"][0]["timeouts"] == {"request": "5s"}


def test_python_builders_accept_durations_as_text() -> None:
    timeouts = HTTPRouteTimeouts(request="1m30s")  # type: ignore[arg-type]
    assert timeouts.request == timedelta(seconds=90)


def test_a_backend_policy_gets_its_defaults() -> None:
    policy = parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "BackendPolicy",
            "metadata": {"name": "payment", "namespace": "shop"},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
                "outlierDetection": {},
                "slowStart": {"window": "30s"},
            },
        }
    )
    assert isinstance(policy.spec, BackendPolicySpec)
    assert policy.spec_dict() == {
        "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
        "loadBalancer": {"type": "peak_ewma"},
        "outlierDetection": {
            "consecutive5xx": 5,
            "interval": "10s",
            "baseEjectionTime": "30s",
            "maxEjectionPercent": 10,
        },
        "retryBudget": {"percent": 20, "minRetriesPerSecond": 10},
        "slowStart": {"window": "30s"},
    }


def test_a_full_backend_policy() -> None:
    spec = BackendPolicySpec.model_validate(
        {
            "targetRefs": [{"kind": "Service", "name": "payment"}],
            "loadBalancer": {"type": "ring_hash", "hashOn": {"sourceIP": True}},
            "connectionLimits": {"maxConnections": 100, "maxPendingRequests": 10},
            "retryBudget": {"percent": 50},
            "faultInjection": {
                "delay": {"percent": 10, "duration": "2s"},
                "abort": {"percent": 1, "status": 503},
            },
        },
        context={"meshpy_document": True},
    )
    assert spec.load_balancer.hash_on is not None
    assert spec.load_balancer.hash_on.source_ip is True
    assert spec.retry_budget.min_retries_per_second == 10
    dumped = spec.model_dump(mode="json", by_alias=True)
    assert dumped["loadBalancer"] == {"type": "ring_hash", "hashOn": {"sourceIP": True}}


AUTHZ = """\
apiVersion: policy.meshpy.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payment-callers, namespace: shop}
spec:
  targetRefs: [{group: "", kind: Service, name: payment}]
  action: ALLOW
  rules:
    - sources:
        - {type: ServiceAccount, serviceAccount: {name: cart}}
        - {type: ServiceAccount, serviceAccount: {namespace: ops, name: "*"}}
        - {type: SPIFFE, spiffe: "spiffe://meshpy.local/ns/shop/sa/checkout"}
      to:
        - {paths: [/charge, /refunds/*], methods: [POST]}
    - sources: []
    - to: []
"""


def test_an_authorization_policy_in_gep_3779_terms() -> None:
    [policy] = parse_stream(AUTHZ)
    assert isinstance(policy.spec, AuthorizationPolicySpec)
    assert policy.spec.action == "ALLOW"
    sources = policy.spec.rules[0].sources
    assert sources is not None
    assert sources[0].service_account is not None
    assert sources[0].service_account.name == "cart"
    assert sources[2].spiffe == "spiffe://meshpy.local/ns/shop/sa/checkout"
    rules = policy.spec_dict()["rules"]
    assert rules[0]["to"] == [{"paths": ["/charge", "/refunds/*"], "methods": ["POST"]}]
    assert rules[1:] == [{"sources": []}, {"to": []}], "empty lists mean 'nobody', so they stay"


def test_kinds_are_found_by_plural_kind_and_short_name() -> None:
    assert set(resources.KINDS) == {
        "httproutes",
        "backendpolicies",
        "authorizationpolicies",
        "tracingpolicies",
    }
    route = resources.KINDS["httproutes"]
    assert (route.kind, route.api_version, route.plural) == (
        "HTTPRoute",
        "gateway.networking.k8s.io/v1",
        "httproutes",
    )
    assert route.model is HTTPRouteSpec
    for name in ("httproutes", "HTTPRoute", "httproute", "route", "hr", "HR"):
        assert kind_info(name) is route
    assert kind_info("bp") is resources.KINDS["backendpolicies"]
    assert kind_info("authz") is resources.KINDS["authorizationpolicies"]
    assert kind_info("AuthorizationPolicy") is resources.KINDS["authorizationpolicies"]
    assert kind_info("tp") is kind_info("TracingPolicy") is resources.KINDS["tracingpolicies"]
    assert kind_info("gateway") is None


def test_streams_skip_empty_documents_and_read_json_and_lists() -> None:
    two = parse_stream("---\n" + CANARY + "---\n---\n" + AUTHZ + "...\n")
    assert [r.kind for r in two] == ["HTTPRoute", "AuthorizationPolicy"]
    docs = [yaml.safe_load(CANARY), yaml.safe_load(AUTHZ)]
    from_json = parse_stream(json.dumps(docs, default=str))
    assert from_json == two
    assert parse_stream(json.dumps(docs[1], default=str)) == two[1:]
    listed = parse_stream(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs}))
    assert listed == two
    assert parse_stream("") == []
    assert parse_stream("# nothing here\n") == []


def test_policy_targets_have_a_python_shortcut() -> None:
    assert PolicyTargetReference.service("payment") == PolicyTargetReference.model_validate(
        {"group": "", "kind": "Service", "name": "payment"}
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10s", timedelta(seconds=10)),
        ("500ms", timedelta(milliseconds=500)),
        ("1h2m", timedelta(hours=1, minutes=2)),
        ("2m1h", timedelta(hours=1, minutes=2)),
        ("1h0m30s250ms", timedelta(hours=1, seconds=30, milliseconds=250)),
        ("0s", timedelta(0)),
        ("99999h", timedelta(hours=99999)),
    ],
)
def test_gateway_durations(text: str, value: timedelta) -> None:
    assert parse_gateway_duration(text) == value
    assert parse_gateway_duration(format_gateway_duration(value)) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=1, minutes=2), "1h2m"),
        (timedelta(seconds=1, milliseconds=500), "1s500ms"),
        (timedelta(minutes=90), "1h30m"),
    ],
)
def test_gateway_durations_are_printed_canonically(value: timedelta, text: str) -> None:
    assert format_gateway_duration(value) == text


@pytest.mark.parametrize("text", ["10", "1.5s", "-1s", "1d", "100000h", "1h1m1s1ms1h", " 1s", ""])
def test_bad_gateway_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_gateway_duration(text)


def test_public_names_are_pinned() -> None:
    assert set(resources.__all__) == {
        "CONTROLLER_NAME",
        "DEFAULT_NAMESPACE",
        "KINDS",
        "AuthorizationPolicySpec",
        "AuthorizationRule",
        "AuthorizationSource",
        "AuthorizationTarget",
        "BackendObjectReference",
        "BackendPolicySpec",
        "ConnectionLimits",
        "FaultAbort",
        "FaultDelay",
        "FaultInjection",
        "Fraction",
        "HTTPBackendRef",
        "HTTPHeader",
        "HTTPHeaderFilter",
        "HTTPHeaderMatch",
        "HTTPPathMatch",
        "HTTPPathModifier",
        "HTTPQueryParamMatch",
        "HTTPRequestMirrorFilter",
        "HTTPRouteFilter",
        "HTTPRouteMatch",
        "HTTPRouteRetry",
        "HTTPRouteRule",
        "HTTPRouteSpec",
        "HTTPRouteTimeouts",
        "HTTPURLRewriteFilter",
        "HashOn",
        "KindInfo",
        "LoadBalancer",
        "OutlierDetection",
        "ParentReference",
        "PolicyTargetReference",
        "Resource",
        "ResourceError",
        "RetryBudget",
        "ServiceAccountSource",
        "SlowStart",
        "Spec",
        "TracingPolicySpec",
        "compute_status",
        "format_gateway_duration",
        "kind_info",
        "parse",
        "parse_gateway_duration",
        "parse_stream",
    }
    assert all(hasattr(resources, name) for name in resources.__all__)


@pytest.mark.parametrize("mode", ["validation", "serialization"])
def test_json_schemas_describe_the_documents(mode: str) -> None:
    for info in resources.KINDS.values():
        schema = info.model.model_json_schema(mode=mode)  # type: ignore[arg-type]
        assert schema["additionalProperties"] is False
        assert "targetRefs" in schema["properties"] or "parentRefs" in schema["properties"]
    timeouts = HTTPRouteSpec.model_json_schema(mode=mode)["$defs"]["HTTPRouteTimeouts"]  # type: ignore[arg-type]
    request = timeouts["properties"]["request"]["anyOf"][0]
    assert request["pattern"] == "^([0-9]{1,5}(h|m|s|ms)){1,4}$"


def test_a_list_without_items_is_refused() -> None:
    with pytest.raises(resources.ResourceError, match=r"^\[0\]\.items: a List needs"):
        parse_stream("apiVersion: v1\nkind: List\n")
