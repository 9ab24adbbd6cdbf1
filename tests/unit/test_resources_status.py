"""Statuses say whether a route attached and its references resolved, Gateway API style."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from meshpy.resources import CONTROLLER_NAME, Resource, compute_status, parse

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
STAMP = "2025-03-01T12:00:00Z"
SERVICES = {("default", "payment"), ("default", "payment-v1"), ("default", "payment-v2")}


def route(spec: dict[str, Any], namespace: str = "default") -> Resource:
    return parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": namespace},
            "spec": spec,
        }
    )


def canary(*backends: dict[str, Any], parent: str = "payment", **rule: Any) -> Resource:
    return route(
        {
            "parentRefs": [{"kind": "Service", "name": parent}],
            "rules": [{"backendRefs": list(backends), **rule}],
        }
    )


def conditions(status: dict[str, Any], parent: int = 0) -> dict[str, tuple[str, str, str]]:
    found = status["parents"][parent]["conditions"]
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in found}


def test_an_attached_route_with_resolved_backends() -> None:
    res = canary({"name": "payment-v1", "weight": 90}, {"name": "payment-v2", "weight": 10})
    status = compute_status(res, SERVICES, generation=3, now=NOW)
    [parent] = status["parents"]
    assert parent["parentRef"] == {"group": "", "kind": "Service", "name": "payment"}
    assert parent["controllerName"] == CONTROLLER_NAME == "meshpy.io/control-plane"
    assert parent["conditions"] == [
        {
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": "attached to Service default/payment",
            "observedGeneration": 3,
            "lastTransitionTime": STAMP,
        },
        {
            "type": "ResolvedRefs",
            "status": "True",
            "reason": "ResolvedRefs",
            "message": "all references resolved",
            "observedGeneration": 3,
            "lastTransitionTime": STAMP,
        },
    ]


@pytest.mark.parametrize(
    ("backend", "reason", "message"),
    [
        (
            {"name": "payment-v3"},
            "BackendNotFound",
            "spec.rules[0].backendRefs[0]: Service default/payment-v3 does not exist",
        ),
        (
            {"name": "payment", "namespace": "other"},
            "RefNotPermitted",
            "spec.rules[0].backendRefs[0]: Service other/payment is in another namespace",
        ),
        (
            {"name": "payment", "kind": "Deployment", "group": "apps"},
            "InvalidKind",
            "spec.rules[0].backendRefs[0]: kind Deployment.apps is not supported",
        ),
        (
            {"name": "payment", "kind": "ServiceImport"},
            "InvalidKind",
            "spec.rules[0].backendRefs[0]: kind ServiceImport is not supported",
        ),
    ],
)
def test_unresolved_backends(backend: dict[str, Any], reason: str, message: str) -> None:
    found = conditions(compute_status(canary(backend), SERVICES, now=NOW))
    assert found["Accepted"][:2] == ("True", "Accepted")
    status, got_reason, got_message = found["ResolvedRefs"]
    assert (status, got_reason) == ("False", reason)
    assert got_message.startswith(message)


def test_every_unresolved_reference_is_named_mirrors_included() -> None:
    mirror = {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow"}}}
    res = canary({"name": "payment-v1"}, {"name": "gone"}, filters=[mirror])
    status, reason, message = conditions(compute_status(res, SERVICES, now=NOW))["ResolvedRefs"]
    assert (status, reason) == ("False", "BackendNotFound")
    assert message == (
        "spec.rules[0].backendRefs[1]: Service default/gone does not exist; "
        "spec.rules[0].filters[0].requestMirror.backendRef: Service default/shadow does not exist"
    )


def test_a_missing_parent_is_not_accepted() -> None:
    found = conditions(compute_status(canary({"name": "payment-v1"}, parent="cart"), SERVICES))
    assert found["Accepted"] == (
        "False",
        "NoMatchingParent",
        "Service default/cart does not exist",
    )


def test_version_services_are_parents_and_backends() -> None:
    res = canary({"name": "payment-v1"}, parent="payment-v2")
    found = conditions(compute_status(res, SERVICES, now=NOW))
    assert found["Accepted"][0] == found["ResolvedRefs"][0] == "True"


def test_one_entry_per_parent_ref() -> None:
    res = route(
        {
            "parentRefs": [
                {"kind": "Service", "name": "payment", "port": 80},
                {"kind": "Service", "name": "payment", "port": 81},
                {"kind": "Service", "name": "cart"},
                {"kind": "Service", "name": "payment", "namespace": "shop"},
            ],
            "rules": [{"backendRefs": [{"name": "payment"}]}],
        }
    )
    services = SERVICES | {("shop", "payment")}
    status = compute_status(res, services, now=NOW)
    refs = [p["parentRef"] for p in status["parents"]]
    assert [r.get("port") for r in refs] == [80, 81, None, None]
    assert refs[3]["namespace"] == "shop"
    accepted = [conditions(status, i)["Accepted"][1] for i in range(4)]
    assert accepted == ["Accepted", "Accepted", "NoMatchingParent", "Accepted"]


def test_a_route_without_parents_has_no_parent_status() -> None:
    assert compute_status(route({}), SERVICES, now=NOW) == {"parents": []}


def test_regular_expression_rules_are_accepted() -> None:
    regex = {"matches": [{"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}}]}
    plain = {"backendRefs": [{"name": "payment"}]}
    parent = [{"kind": "Service", "name": "payment"}]
    status = conditions(
        compute_status(route({"parentRefs": parent, "rules": [plain, regex]}), SERVICES)
    )
    assert status["Accepted"][:2] == ("True", "Accepted")
    assert "PartiallyInvalid" not in status


def test_transition_times_survive_unchanged_conditions() -> None:
    res = canary({"name": "payment-v1"})
    first = compute_status(res, SERVICES, generation=1, now=NOW)
    later = NOW + timedelta(hours=1)
    same = compute_status(res, SERVICES, generation=2, now=later, previous=first)
    assert [c["lastTransitionTime"] for c in same["parents"][0]["conditions"]] == [STAMP, STAMP]
    assert [c["observedGeneration"] for c in same["parents"][0]["conditions"]] == [2, 2]
    gone = compute_status(res, {("default", "payment")}, generation=3, now=later, previous=same)
    accepted, resolved = gone["parents"][0]["conditions"]
    assert accepted["lastTransitionTime"] == STAMP
    assert (resolved["status"], resolved["lastTransitionTime"]) == ("False", "2025-03-01T13:00:00Z")


def test_timestamps_are_utc() -> None:
    plus_two = datetime(2025, 3, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    status = compute_status(canary({"name": "payment"}), SERVICES, now=plus_two)
    assert status["parents"][0]["conditions"][0]["lastTransitionTime"] == STAMP
    status = compute_status(canary({"name": "payment"}), SERVICES)
    stamp = status["parents"][0]["conditions"][0]["lastTransitionTime"]
    assert datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").year >= 2025


def policy(kind: str, *targets: str, namespace: str = "default") -> Resource:
    spec: dict[str, Any] = {"targetRefs": [{"kind": "Service", "name": t} for t in targets]}
    if kind == "AuthorizationPolicy":
        spec["action"] = "ALLOW"
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": "p", "namespace": namespace},
            "spec": spec,
        }
    )


@pytest.mark.parametrize("kind", ["BackendPolicy", "AuthorizationPolicy"])
@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        (("payment",), ("True", "Accepted", "applies to Service default/payment")),
        (
            ("payment", "payment-v2"),
            ("True", "Accepted", "applies to Services default/payment, default/payment-v2"),
        ),
        (
            ("payment", "cart"),
            (
                "True",
                "Accepted",
                "applies to Service default/payment; Service default/cart not found",
            ),
        ),
        (
            ("cart", "shop"),
            ("False", "TargetNotFound", "Services default/cart, default/shop not found"),
        ),
    ],
)
def test_policy_status(kind: str, targets: tuple[str, ...], expected: tuple[str, ...]) -> None:
    status = compute_status(policy(kind, *targets), SERVICES, generation=2, now=NOW)
    [accepted] = status["conditions"]
    assert (accepted["status"], accepted["reason"], accepted["message"]) == expected
    assert accepted["type"] == "Accepted"
    assert (accepted["observedGeneration"], accepted["lastTransitionTime"]) == (2, STAMP)


def test_policies_look_in_their_own_namespace() -> None:
    status = compute_status(policy("BackendPolicy", "payment", namespace="shop"), SERVICES)
    assert status["conditions"][0]["reason"] == "TargetNotFound"
