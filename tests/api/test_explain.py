"""``POST /api/v1/explain`` and ``meshpy explain`` against a live control plane.

The registry holds what sidecars registered; the answer is built from it as their
snapshots are, so a resource applied shows at once in the next explanation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.api.live import LiveServer
from tests.api.test_proxies import _healthy

CART = "spiffe://meshpy.local/ns/default/sa/cart"
ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "payment-canary"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "payment"}],
        "rules": [
            {
                "matches": [{"headers": [{"name": "x-beta", "value": "1"}]}],
                "backendRefs": [{"name": "payment-v2"}],
            },
            {
                "backendRefs": [
                    {"name": "payment-v1", "weight": 80},
                    {"name": "payment-v2", "weight": 20},
                ]
            },
        ],
    },
}
POLICY = {
    "apiVersion": "policy.meshpy.io/v1alpha1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "no-v2-posts"},
    "spec": {
        "targetRefs": [{"group": "", "kind": "Service", "name": "payment-v2"}],
        "action": "DENY",
        "rules": [{"to": [{"methods": ["POST"]}]}],
    },
}


def question(**fields: Any) -> dict[str, Any]:
    return {
        "source": {"service": "cart"},
        "destination": {"service": "payment"},
        "method": "POST",
        "path": "/charge",
        **fields,
    }


@pytest.fixture
def shop(api: LiveServer) -> LiveServer:
    _healthy(api, "cart", app_port=8080)
    _healthy(api, "payment", version="v1", inbound_port=16001, app_port=8081)
    _healthy(api, "payment", version="v2", inbound_port=16002, app_port=8082)
    answer = api.admin.post("/api/v1/apply", json=[ROUTE, POLICY])
    assert answer.status_code == 200, answer.text
    return api


def test_an_explanation_from_the_registry(shop: LiveServer) -> None:
    answer = shop.admin.post("/api/v1/explain", json=question())
    assert answer.status_code == 200, answer.text
    explained = answer.json()
    assert explained["source"] == {"namespace": "default", "service": "cart", "identity": CART}
    assert explained["route"]["matched"] == {
        "route": "default/payment-canary",
        "rule": 1,
        "match": 0,
        "conditions": ["path PathPrefix /"],
    }
    assert [s["failed"] for s in explained["route"]["skipped"]] == ["header x-beta = 1"]
    backends = {b["service"]: b for b in explained["backends"]}
    assert {name: (b["weight"], b["share"]) for name, b in backends.items()} == {
        "payment-v1": (80, 80.0),
        "payment-v2": (20, 20.0),
    }
    [v1] = backends["payment-v1"]["destinations"]
    [v2] = backends["payment-v2"]["destinations"]
    assert (v1["version"], v1["authorization"]["allowed"], v1["refused"]) == ("v1", True, None)
    assert v2["version"] == "v2"
    assert v2["authorization"]["policy"] == "default/no-v2-posts"
    assert (v2["authorization"]["action"], v2["authorization"]["rule"]) == ("deny", 0)
    assert v2["refused"]["status"] == 403

    # The next explanation follows the registry: without the policy v2 takes POSTs.
    deleted = shop.admin.delete("/api/v1/namespaces/default/authorizationpolicies/no-v2-posts")
    assert deleted.status_code in (200, 204)
    again = shop.admin.post("/api/v1/explain", json=question()).json()
    [v2] = next(b for b in again["backends"] if b["service"] == "payment-v2")["destinations"]
    assert v2["authorization"]["allowed"]


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (question(source={"service": "carts"}), "source.service", "no service default/carts"),
        (
            question(destination={"service": "payment", "namespace": "shop"}),
            "destination.service",
            "no service shop/payment",
        ),
        (
            question(method="G T"),
            "method",
            "'G T' is not an HTTP method (a token, such as GET)",
        ),
        (
            question(path="charge"),
            "path",
            "'charge' is not a request path (it starts with '/' and has no spaces)",
        ),
        (
            question(headers=[{"name": "x-a", "value": "caf\u00e9"}]),
            "headers[0].value",
            "'café' is not a header value (printable ASCII, single spaces or tabs between words)",
        ),
        (question(extra=1), "extra", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_question_is_a_problem_naming_the_field(
    shop: LiveServer, body: dict[str, Any], path: str, message: str
) -> None:
    answer = shop.admin.post("/api/v1/explain", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"] == [{"path": path, "message": message}]


def test_only_the_admin_may_ask(shop: LiveServer) -> None:
    assert shop.client().post("/api/v1/explain", json=question()).status_code == 401
    join = shop.client(shop.join_token("cart"))
    assert join.post("/api/v1/explain", json=question()).status_code == 403


def meshpy(api: LiveServer, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    env.pop("MESHPY_SERVER", None)
    env.pop("MESHPY_TOKEN", None)
    common = ["--server", api.url, "--token", api.admin_token]
    return subprocess.run(
        [sys.executable, "-m", "meshpy", "explain", *argv, *common],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_the_command_prints_the_explanation_as_asked(shop: LiveServer) -> None:
    table = meshpy(shop, "--from", "cart", "--to", "payment", "-H", "x-beta: 1", "POST", "/c")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"POST /c -H x-beta:1 from default/cart ({CART}) to payment"
    assert lines[1] == (
        "route     payment.default: HTTPRoute default/payment-canary rule 0, match 0: "
        "path PathPrefix / and header x-beta = 1"
    )
    assert any(
        line.startswith("payment-v2.default  v2") and "403 unauthorized" in line for line in lines
    ), table.stdout
    yaml_out = meshpy(shop, "--from", "cart", "--to", "payment", "-o", "yaml", "GET", "/")
    assert yaml_out.returncode == 0, yaml_out.stderr
    assert yaml_out.stdout.startswith("source:\n  namespace: default\n  service: cart\n")


def test_the_command_refuses_an_unknown_service_with_exit_2(shop: LiveServer) -> None:
    done = meshpy(shop, "--from", "cart", "--to", "payments", "GET", "/")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: --to: no service default/payments\n"


def test_the_destination_is_in_the_callers_namespace_unless_named(api: LiveServer) -> None:
    for service in ("cart", "payment"):
        reg = api.register(service, "shop", app_port=8080)
        lease = f"/api/v1/namespaces/shop/services/{service}/instances/{reg['id']}/lease"
        assert api.admin.put(lease, json={"health": "passing"}).status_code == 200
    done = meshpy(api, "--from", "cart.shop", "--to", "payment", "-o", "json", "GET", "/")
    assert done.returncode == 0, done.stderr
    explained = json.loads(done.stdout)
    assert explained["destination"] == {
        "namespace": "shop",
        "service": "payment",
        "host": "payment",
    }
    assert explained["route"]["virtual_host"] == "payment.shop"
    other = meshpy(api, "--from", "cart.shop", "--to", "payment.default", "GET", "/")
    assert (other.returncode, other.stderr) == (2, "error: --to: no service default/payment\n")
