"""AuthorizationPolicy refusals name their field: action, sources, paths and methods."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.refusals import DELETE, assert_refused, authz, case, set_field

CASES = [
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
    assert_refused(set_field(make(), path, value), error_path, message)
