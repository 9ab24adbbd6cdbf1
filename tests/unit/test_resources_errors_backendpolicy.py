"""BackendPolicy refusals name their field: targets, load balancer, outlier detection, limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.refusals import DELETE, assert_refused, backend_policy, case, set_field

CASES = [
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
]


@pytest.mark.parametrize(("make", "path", "value", "error_path", "message"), CASES)
def test_refusal_names_the_field(
    make: Any, path: str, value: object, error_path: str, message: str
) -> None:
    assert_refused(set_field(make(), path, value), error_path, message)
