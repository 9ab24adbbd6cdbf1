"""Every refusal names its field; unsupported Gateway API fields are refused, never ignored."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from meshpy.resources import ResourceError, parse, parse_stream

DELETE = object()


def route() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "canary", "namespace": "default"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "payment"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/charge"}}],
                    "backendRefs": [{"name": "payment-v1", "port": 8080, "weight": 90}],
                }
            ],
        },
    }


def backend_policy() -> dict[str, Any]:
    return {
        "apiVersion": "policy.meshpy.io/v1alpha1",
        "kind": "BackendPolicy",
        "metadata": {"name": "payment"},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
            "loadBalancer": {"type": "round_robin"},
        },
    }


def authz() -> dict[str, Any]:
    return {
        "apiVersion": "policy.meshpy.io/v1alpha1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "payment"},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
            "action": "ALLOW",
            "rules": [
                {
                    "sources": [{"type": "SPIFFE", "spiffe": "spiffe://meshpy.local/ns/a/sa/b"}],
                    "to": [{"paths": ["/x"], "methods": ["GET"]}],
                }
            ],
        },
    }


def _set(doc: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """Set (or with DELETE remove) the value at a path like ``spec.rules[0].matches``."""
    doc = copy.deepcopy(doc)
    parts: list[str | int] = [
        int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", path)
    ]
    target: Any = doc
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    elif isinstance(target, list) and parts[-1] == len(target):
        target.append(value)
    else:
        target[parts[-1]] = value
    return doc


R0 = "spec.rules[0]"
M0 = f"{R0}.matches[0]"
B0 = f"{R0}.backendRefs[0]"
HEADER_FILTER = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": []}}


def _mirror(**fields: object) -> dict[str, Any]:
    return {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow"}, **fields}}


def case(
    name: str, path: str, value: object, message: str, *, at: str = "", make: Any = None
) -> Any:
    """Set ``path`` to ``value``; expect ``message`` at ``path`` (+ ``at`` if it starts
    with "." or "[", else at ``at``)."""
    error_path = path + at if at.startswith((".", "[")) else at or path
    return pytest.param(make or route, path, value, error_path, message, id=name)


CASES = [
    # --- unsupported Gateway API fields, refused by name
    case("rule-session", f"{R0}.sessionPersistence", {}, "not supported by meshpy"),
    case("default-gateways", "spec.useDefaultGateways", "All", "not supported by meshpy"),
    case("section-name", "spec.parentRefs[0].sectionName", "http", "not supported by meshpy"),
    case(
        "redirect-filter",
        f"{R0}.filters",
        [{"type": "RequestRedirect", "requestRedirect": {}}],
        "RequestRedirect filters are not supported by meshpy",
        at="[0].type",
    ),
    case(
        "extension-filter",
        f"{R0}.filters",
        [{"type": "ExtensionRef"}],
        "not supported by meshpy",
        at="[0].type",
    ),
    case(
        "cors-field",
        f"{R0}.filters",
        [{**HEADER_FILTER, "cors": {}}],
        "not supported by meshpy",
        at="[0].cors",
    ),
    case(
        "backend-filter-redirect",
        f"{B0}.filters",
        [{"type": "RequestRedirect"}],
        "not supported by meshpy",
        at="[0].type",
    ),
    # --- unknown fields
    case("typo", f"{R0}.backendRef", [], "unknown field; did you mean 'backendRefs'?"),
    case("snake-case", f"{R0}.backend_refs", [], "unknown field; did you mean 'backendRefs'?"),
    case("top-level", "specs", {}, "unknown field"),
    case("in-match", f"{M0}.host", "x", "unknown field"),
    # --- parentRefs
    case(
        "parent-no-kind",
        "spec.parentRefs[0].kind",
        DELETE,
        "required: meshpy routes attach to a Service",
    ),
    case(
        "parent-gateway", "spec.parentRefs[0].kind", "Gateway", "meshpy routes attach to Services"
    ),
    case("parent-group", "spec.parentRefs[0].group", "gateway.networking.k8s.io", 'must be ""'),
    case(
        "parent-twice",
        "spec.parentRefs[1]",
        {"kind": "Service", "name": "payment"},
        "already a parent",
    ),
    case("parent-port", "spec.parentRefs[0].port", 0, "must be at least 1"),
    case("parent-namespace", "spec.parentRefs[0].namespace", "Shop", "is not a valid name"),
    # --- rules, matches
    case("no-rules", "spec.rules", [], "must have at least 1 item"),
    case("17-rules", "spec.rules", [{}] * 17, "must have at most 16 items, has 17"),
    case("65-matches", f"{R0}.matches", [{}] * 65, "at most 64"),
    case(
        "129-matches",
        "spec.rules",
        [{"matches": [{}] * 64}] * 2 + [{"matches": [{}]}],
        "at most 128 matches",
    ),
    case("rule-names", "spec.rules", [{"name": "a"}, {"name": "a"}], "used twice", at="[1].name"),
    case("rule-name-format", f"{R0}.name", "Beta", "is not a valid name"),
    case("path-relative", f"{M0}.path.value", "charge", "must be an absolute path"),
    case("path-double-slash", f"{M0}.path.value", "/a//b", "must not contain '//'"),
    case("path-dot-segment", f"{M0}.path.value", "/a/../b", "must not contain '/../'"),
    case("path-encoded-slash", f"{M0}.path.value", "/a%2Fb", "must not contain '%2F'"),
    case("path-space", f"{M0}.path.value", "/a b", "holds characters"),
    case(
        "path-type",
        f"{M0}.path.type",
        "Prefix",
        "must be 'Exact', 'PathPrefix' or 'RegularExpression', not 'Prefix'",
    ),
    case(
        "path-regex",
        f"{M0}.path",
        {"type": "RegularExpression", "value": "/a("},
        "invalid regular expression",
        at=".value",
    ),
    case("path-too-long", f"{M0}.path.value", "/" + "a" * 1024, "1024"),
    case(
        "header-name",
        f"{M0}.headers",
        [{"name": "x beta", "value": "1"}],
        "not a valid HTTP header name",
        at="[0].name",
    ),
    case(
        "header-pseudo",
        f"{M0}.headers",
        [{"name": ":authority", "value": "1"}],
        "not a valid HTTP header name",
        at="[0].name",
    ),
    case(
        "header-twice",
        f"{M0}.headers",
        [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}],
        "listed twice",
        at="[1].name",
    ),
    case(
        "header-number",
        f"{M0}.headers",
        [{"name": "a", "value": 1}],
        "must be a string, not the number 1 (quote it in YAML)",
        at="[0].value",
    ),
    case(
        "header-empty",
        f"{M0}.headers",
        [{"name": "a", "value": ""}],
        "must not be empty",
        at="[0].value",
    ),
    case("header-no-value", f"{M0}.headers", [{"name": "a"}], "required", at="[0].value"),
    case(
        "17-headers",
        f"{M0}.headers",
        [{"name": f"h{i}", "value": "1"} for i in range(17)],
        "at most 16",
    ),
    case(
        "query-empty",
        f"{M0}.queryParams",
        [{"name": "q", "value": ""}],
        "at least 1 character",
        at="[0].value",
    ),
    case(
        "query-type",
        f"{M0}.queryParams",
        [{"type": "Prefix", "name": "q", "value": "v"}],
        "must be 'Exact' or 'RegularExpression'",
        at="[0].type",
    ),
    case("method", f"{M0}.method", "FETCH", "must be 'GET'"),
    case("method-lower", f"{M0}.method", "get", "not 'get'"),
    # --- backendRefs
    case("weight-high", f"{B0}.weight", 1_000_001, "must be at most 1000000"),
    case("weight-negative", f"{B0}.weight", -1, "must be at least 0"),
    case("weight-text", f"{B0}.weight", "5", "must be an integer"),
    case("weight-float", f"{B0}.weight", 1.5, "must be an integer"),
    case("backend-no-name", f"{B0}.name", DELETE, "required"),
    case("backend-port", f"{B0}.port", 70000, "at most 65535"),
    case("17-backends", f"{R0}.backendRefs", [{"name": "a"}] * 17, "at most 16"),
    case("backend-kind", f"{B0}.kind", "not a kind", "is not a kind"),
    # --- filters
    case(
        "filter-type",
        f"{R0}.filters",
        [{"type": "Rewrite"}],
        "must be 'RequestHeaderModifier'",
        at="[0].type",
    ),
    case(
        "filter-missing-config",
        f"{R0}.filters",
        [{"type": "RequestHeaderModifier"}],
        "required for type RequestHeaderModifier",
        at="[0].requestHeaderModifier",
    ),
    case(
        "filter-wrong-config",
        f"{R0}.filters",
        [{**HEADER_FILTER, "urlRewrite": {}}],
        "must not be set for type RequestHeaderModifier",
        at="[0].urlRewrite",
    ),
    case(
        "filter-repeated",
        f"{R0}.filters",
        [HEADER_FILTER, HEADER_FILTER],
        "once per rule",
        at="[1].type",
    ),
    case(
        "header-action-twice",
        f"{R0}.filters",
        [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {
                    "set": [{"name": "X-A", "value": "1"}],
                    "remove": ["x-a"],
                },
            }
        ],
        "already has an action (set)",
        at="[0].requestHeaderModifier.remove[0]",
    ),
    case(
        "mirror-both",
        f"{R0}.filters",
        [_mirror(percent=5, fraction={"numerator": 1})],
        "either percent or fraction",
        at="[0].requestMirror.fraction",
    ),
    case(
        "mirror-percent",
        f"{R0}.filters",
        [_mirror(percent=101)],
        "at most 100",
        at="[0].requestMirror.percent",
    ),
    case(
        "mirror-fraction",
        f"{R0}.filters",
        [_mirror(fraction={"numerator": 3, "denominator": 2})],
        "not be more than the denominator",
        at="[0].requestMirror.fraction.numerator",
    ),
    case(
        "rewrite-path-type",
        f"{R0}.filters",
        [
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplaceFullPath", "replacePrefixMatch": "/"}},
            }
        ],
        "needs replaceFullPath only",
        at="[0].urlRewrite.path.replaceFullPath",
    ),
    case(
        "rewrite-prefix-exact",
        R0,
        {
            "matches": [{"path": {"type": "Exact", "value": "/a"}}],
            "filters": [
                {
                    "type": "URLRewrite",
                    "urlRewrite": {
                        "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/b"}
                    },
                }
            ],
        },
        "exactly one match, of type PathPrefix",
        at=".filters[0].urlRewrite.path",
    ),
    case(
        "rewrite-hostname",
        f"{R0}.filters",
        [{"type": "URLRewrite", "urlRewrite": {"hostname": "*.example.com"}}],
        "not a lower-case host name",
        at="[0].urlRewrite.hostname",
    ),
    # --- timeouts, retry, hostnames
    case(
        "timeout-no-unit",
        f"{R0}.timeouts",
        {"request": 10},
        'has no unit: write a duration such as "10s"',
        at=".request",
    ),
    case(
        "timeout-format",
        f"{R0}.timeouts",
        {"request": "1.5s"},
        "invalid duration '1.5s'",
        at=".request",
    ),
    case(
        "timeout-order",
        f"{R0}.timeouts",
        {"request": "1s", "backendRequest": "2s"},
        "must not be longer than request",
        at=".backendRequest",
    ),
    case("retry-code", f"{R0}.retry", {"codes": [503, 600]}, "at most 599", at=".codes[1]"),
    case("retry-attempts", f"{R0}.retry", {"attempts": -1}, "at least 0", at=".attempts"),
    case("retry-many", f"{R0}.retry", {"attempts": 11}, "at most 10", at=".attempts"),
    case("retry-backoff", f"{R0}.retry", {"backoff": "11s"}, "at most 10s", at=".backoff"),
    case("retry-no-wait", f"{R0}.retry", {"backoff": "0s"}, "longer than 0s", at=".backoff"),
    case("hostname", "spec.hostnames", ["Payment.example.com"], "is not a host name", at="[0]"),
    case("hostname-ip", "spec.hostnames", ["10.0.0.1:80"], "is not a host name", at="[0]"),
    # --- document and metadata
    case("no-kind", "kind", DELETE, "required: one of HTTPRoute"),
    case("unknown-kind", "kind", "VirtualService", "unknown kind 'VirtualService'"),
    case("kind-case", "kind", "HttpRoute", "did you mean HTTPRoute?"),
    case(
        "api-version",
        "apiVersion",
        "networking.istio.io/v1",
        "HTTPRoute is gateway.networking.k8s.io/v1",
    ),
    case("no-api-version", "apiVersion", DELETE, "required"),
    case("no-spec", "spec", DELETE, "required"),
    case("no-metadata", "metadata", DELETE, "required"),
    case("no-name", "metadata.name", DELETE, "required"),
    case("name-format", "metadata.name", "Canary", "'Canary' is not a valid name"),
    case("namespace-dots", "metadata.namespace", "a.b", "is not a valid name"),
    case("generate-name", "metadata.generateName", "canary-", "not supported by meshpy"),
    case("finalizers", "metadata.finalizers", ["x"], "not supported by meshpy"),
    case("label-key", "metadata.labels", {"bad key": "x"}, "invalid label key 'bad key'"),
    case("label-value", "metadata.labels", {"tier": "-x"}, "invalid value '-x' of label 'tier'"),
    case("label-number", "metadata.labels", {"version": 2}, "quote it in YAML", at=".version"),
    case("annotation-key", "metadata.annotations", {"/x": "y"}, "invalid annotation key"),
    case("spec-not-mapping", "spec", ["rules"], "must be a mapping"),
    # --- BackendPolicy
    case("bp-no-targets", "spec.targetRefs", DELETE, "required", make=backend_policy),
    case("bp-empty-targets", "spec.targetRefs", [], "at least 1 item", make=backend_policy),
    case(
        "bp-target-kind",
        "spec.targetRefs[0].kind",
        "Deployment",
        "meshpy policies apply to Services",
        make=backend_policy,
    ),
    case("bp-target-no-kind", "spec.targetRefs[0].kind", DELETE, "required", make=backend_policy),
    case(
        "bp-target-twice",
        "spec.targetRefs[1]",
        {"kind": "Service", "name": "payment"},
        "listed twice",
        at=".name",
        make=backend_policy,
    ),
    case(
        "bp-section",
        "spec.targetRefs[0].sectionName",
        "http",
        "not supported by meshpy",
        make=backend_policy,
    ),
    case(
        "bp-lb-type",
        "spec.loadBalancer.type",
        "random",
        "must be 'round_robin', 'least_request', 'peak_ewma', 'ring_hash' or 'maglev'",
        make=backend_policy,
    ),
    case(
        "bp-hash-missing",
        "spec.loadBalancer",
        {"type": "maglev"},
        "required for type maglev",
        at=".hashOn",
        make=backend_policy,
    ),
    case(
        "bp-hash-unused",
        "spec.loadBalancer.hashOn",
        {"header": "x-user"},
        "only for ring_hash and maglev",
        make=backend_policy,
    ),
    case(
        "bp-hash-two",
        "spec.loadBalancer",
        {"type": "ring_hash", "hashOn": {"header": "x", "cookie": "y"}},
        "exactly one of header, cookie or sourceIP",
        at=".hashOn",
        make=backend_policy,
    ),
    case(
        "bp-hash-source-false",
        "spec.loadBalancer",
        {"type": "ring_hash", "hashOn": {"sourceIP": False}},
        "set it to true",
        at=".hashOn.sourceIP",
        make=backend_policy,
    ),
    case(
        "bp-outlier-interval",
        "spec.outlierDetection",
        {"interval": "0s"},
        "longer than zero",
        at=".interval",
        make=backend_policy,
    ),
    case(
        "bp-outlier-percent",
        "spec.outlierDetection",
        {"maxEjectionPercent": 101},
        "at most 100",
        at=".maxEjectionPercent",
        make=backend_policy,
    ),
    case(
        "bp-outlier-5xx",
        "spec.outlierDetection",
        {"consecutive5xx": 0},
        "at least 1",
        at=".consecutive5xx",
        make=backend_policy,
    ),
    case(
        "bp-limits",
        "spec.connectionLimits",
        {"maxConnections": 0},
        "at least 1",
        at=".maxConnections",
        make=backend_policy,
    ),
    case(
        "bp-budget",
        "spec.retryBudget",
        {"percent": 120},
        "at most 100",
        at=".percent",
        make=backend_policy,
    ),
    case("bp-slow-start", "spec.slowStart", {}, "required", at=".window", make=backend_policy),
    case(
        "bp-fault-empty",
        "spec.faultInjection",
        {},
        "give delay, abort or both",
        make=backend_policy,
    ),
    case(
        "bp-fault-status",
        "spec.faultInjection",
        {"abort": {"percent": 1, "status": 700}},
        "at most 599",
        at=".abort.status",
        make=backend_policy,
    ),
    case(
        "bp-fault-delay",
        "spec.faultInjection",
        {"delay": {"percent": 1}},
        "required",
        at=".delay.duration",
        make=backend_policy,
    ),
    # --- AuthorizationPolicy
    case("az-no-action", "spec.action", DELETE, "required", make=authz),
    case(
        "az-action-case", "spec.action", "allow", "must be 'ALLOW', 'DENY' or 'AUDIT'", make=authz
    ),
    case(
        "az-spiffe-missing",
        "spec.rules[0].sources[0]",
        {"type": "SPIFFE"},
        "type SPIFFE needs spiffe",
        at=".spiffe",
        make=authz,
    ),
    case(
        "az-spiffe-format",
        "spec.rules[0].sources[0].spiffe",
        "https://example.com/a",
        "is not a SPIFFE ID",
        make=authz,
    ),
    case(
        "az-spiffe-dot-segment",
        "spec.rules[0].sources[0].spiffe",
        "spiffe://meshpy.local/ns/../sa/b",
        "is not a SPIFFE ID",
        make=authz,
    ),
    case(
        "az-account-missing",
        "spec.rules[0].sources[0]",
        {"type": "ServiceAccount", "spiffe": "spiffe://a/b"},
        "needs serviceAccount",
        at=".serviceAccount",
        make=authz,
    ),
    case(
        "az-account-name",
        "spec.rules[0].sources[0]",
        {"type": "ServiceAccount", "serviceAccount": {"name": "Cart"}},
        "is not a service account",
        at=".serviceAccount.name",
        make=authz,
    ),
    case(
        "az-source-type",
        "spec.rules[0].sources[0].type",
        "Principal",
        "must be 'SPIFFE' or 'ServiceAccount'",
        make=authz,
    ),
    case(
        "az-network",
        "spec.rules[0].networkAttributes",
        {"ports": [80]},
        "not supported by meshpy",
        make=authz,
    ),
    case("az-selector", "spec.targetRefs[0].selector", {}, "not supported by meshpy", make=authz),
    case(
        "az-enforcement", "spec.enforcementLevel", "Network", "not supported by meshpy", make=authz
    ),
    case(
        "az-path",
        "spec.rules[0].to[0].paths",
        ["/a", "charge"],
        "is not a path",
        at="[1]",
        make=authz,
    ),
    case(
        "az-path-star",
        "spec.rules[0].to[0].paths",
        ["/a/*/b"],
        "one final '*'",
        at="[0]",
        make=authz,
    ),
    case("az-method", "spec.rules[0].to[0].methods", ["get"], "not 'get'", at="[0]", make=authz),
    case("az-istio-from", "spec.rules[0].from", [], "unknown field", make=authz),
]


@pytest.mark.parametrize(("make", "path", "value", "error_path", "message"), CASES)
def test_refusal_names_the_field(
    make: Any, path: str, value: object, error_path: str, message: str
) -> None:
    doc = _set(make(), path, value)
    with pytest.raises(ResourceError) as info:
        parse(doc)
    error = info.value
    assert error.path == error_path
    assert message in error.message
    assert str(error) == f"{error.path}: {error.message}"
    assert error.details[0] == (error.path, error.message)


def test_the_templates_are_valid() -> None:
    for make in (route, backend_policy, authz):
        parse(make())


def test_errors_in_metadata_and_spec_are_all_listed() -> None:
    doc = _set(_set(route(), "metadata.name", "Bad"), f"{B0}.weight", -1)
    with pytest.raises(ResourceError) as info:
        parse(doc)
    assert [path for path, _ in info.value.details] == ["metadata.name", f"{B0}.weight"]


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("kind: [", "", "invalid YAML"),
        ("a: 1\na: 2\n", "", "duplicate key 'a'"),
        ("just text", "[0]", "expected a mapping"),
        ("- 1\n- 2\n", "[0]", "expected a mapping"),
        ('{"kind": "HTTPRoute"', "", "invalid YAML"),
    ],
)
def test_stream_syntax_errors(text: str, path: str, message: str) -> None:
    with pytest.raises(ResourceError) as info:
        parse_stream(text)
    assert info.value.path == path
    assert message in info.value.message


def test_stream_errors_carry_the_document_index() -> None:
    import yaml

    good, bad = route(), _set(route(), f"{B0}.weight", 2_000_000)
    worse = _set(backend_policy(), "spec.loadBalancer.type", "random")
    text = yaml.safe_dump_all([good, None, bad, worse])
    with pytest.raises(ResourceError) as info:
        parse_stream(text)
    assert info.value.path == f"[2].{B0}.weight"
    assert str(info.value).startswith(f"[2].{B0}.weight: must be at most 1000000")
    assert [p for p, _ in info.value.details] == [f"[2].{B0}.weight", "[3].spec.loadBalancer.type"]


def test_yaml_errors_say_where() -> None:
    with pytest.raises(ResourceError, match=r"invalid YAML: .*\(line \d+, column \d+\)"):
        parse_stream("kind: HTTPRoute\nspec:\n  rules: [\n")
