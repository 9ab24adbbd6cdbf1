"""meshpy.rules.Client against a live server (SQLite and PostgreSQL): apply, diff, get, delete."""

from __future__ import annotations

from typing import Any

import pytest

from meshpy import rules
from meshpy.rules import ApiError, Client
from tests.api.live import LiveServer


def client(api: LiveServer, **options: Any) -> Client:
    return Client(api.url, api.admin_token, **options)


def test_apply_diff_get_delete_round_trip(api: LiveServer) -> None:
    api.register("payment")
    canary = rules.canary("payment", stable="v1", candidate="v2", weight=10)
    policy = rules.allow("payment", from_=["cart"], methods=["POST"])
    with client(api) as mesh:
        assert [(c.kind, c.namespace, c.name, c.action) for c in mesh.diff(canary, policy)] == [
            ("HTTPRoute", "default", "payment", "created"),
            ("AuthorizationPolicy", "default", "payment-allow", "created"),
        ]
        created = mesh.diff(canary)[0].diff
        assert created.startswith("--- /dev/null\n+++ HTTPRoute/default/payment\n")
        assert "+      name: payment-v2\n" in created

        applied = mesh.apply(canary, policy)
        assert [(a.kind, a.name, a.result, a.generation) for a in applied] == [
            ("HTTPRoute", "payment", "created", 1),
            ("AuthorizationPolicy", "payment-allow", "created", 1),
        ]
        stored = api.admin.get("/api/v1/namespaces/default/httproutes/payment").json()
        assert stored["spec"] == canary.spec_dict()

        assert mesh.get("hr", "payment") == rules.canary(
            "payment", stable="v1", candidate="v2", weight=10, namespace="default"
        )
        assert mesh.get("httproute", "absent") is None
        assert [c.action for c in mesh.diff(canary, policy)] == ["unchanged", "unchanged"]
        assert mesh.diff(canary)[0].diff == ""

        moved = rules.canary("payment", stable="v1", candidate="v2", weight=50)
        (change,) = mesh.diff(moved)
        assert change.action == "changed"
        assert "-      weight: 90\n+      weight: 50\n" in change.diff
        assert "-      weight: 10\n+      weight: 50\n" in change.diff
        assert [a.result for a in mesh.apply(moved, policy)] == ["configured", "unchanged"]
        assert [a.generation for a in mesh.apply(moved)] == [2]

        assert mesh.delete(moved, ("authz", "payment-allow")) == [True, True]
        assert mesh.delete(("hr", "payment")) == [False]
        assert mesh.get("hr", "payment") is None
    assert api.admin.get("/api/v1/httproutes").json() == {"items": []}
    assert api.admin.get("/api/v1/authorizationpolicies").json() == {"items": []}


def test_namespace_of_the_client_and_of_the_resource(api: LiveServer) -> None:
    with client(api, namespace="shop") as mesh:
        mesh.apply(rules.route("cart"), rules.load_balancer("cart", namespace="ops"))
        assert mesh.get("hr", "cart") is not None
        assert mesh.get("bp", "cart") is None
        assert mesh.get("bp", "cart", namespace="ops") is not None
        assert [c.action for c in mesh.diff(rules.route("cart"))] == ["unchanged"]
        assert mesh.delete(rules.load_balancer("cart", namespace="ops")) == [True]


def test_dry_run_sends_nothing(api: LiveServer) -> None:
    with client(api, dry_run=True) as mesh:
        assert [a.result for a in mesh.apply(rules.route("cart"))] == ["dry-run"]
        assert mesh.delete(("hr", "cart")) == [True]
        assert [c.action for c in mesh.diff(rules.route("cart"))] == ["created"]
    assert api.admin.get("/api/v1/httproutes").json() == {"items": []}


def test_refusals_are_api_errors(api: LiveServer) -> None:
    with Client(api.url, "not-the-token") as mesh, pytest.raises(ApiError) as caught:
        mesh.apply(rules.route("cart"))
    assert caught.value.status == 401
