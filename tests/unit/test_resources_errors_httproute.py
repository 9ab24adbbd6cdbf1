"""HTTPRoute refusals name their field; unsupported Gateway API fields are refused, not ignored."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.refusals import B0, DELETE, M0, R0, assert_refused, case, set_field

HEADER_FILTER = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": []}}


def _mirror(**fields: object) -> dict[str, Any]:
    return {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow"}, **fields}}


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
]


@pytest.mark.parametrize(("make", "path", "value", "error_path", "message"), CASES)
def test_refusal_names_the_field(
    make: Any, path: str, value: object, error_path: str, message: str
) -> None:
    assert_refused(set_field(make(), path, value), error_path, message)
