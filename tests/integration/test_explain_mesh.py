"""``meshpy explain`` agrees with what a real mesh does, on a table of requests.

A control plane (mesh default ``deny``), real sidecars over mTLS: payment v1 and v2, ledger
and vault with the test app behind them, and the callers cart and shipping. HTTPRoutes,
a BackendPolicy and AuthorizationPolicies are applied; then each request of the table is
explained by the API and sent, byte for byte, through the caller's sidecar. What explain
says must be what happens: the same refusal from the caller's sidecar, or the same set of
outcomes over the backends (the app of each version that answers, with the path it gets;
the destination sidecars that refuse, with the status). Weighted and load-balanced backends
get enough requests that every member of the set is seen.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import (
    APP,
    admin_stats,
    cluster_endpoints,
    wait_applied,
    wait_sidecar_ready,
    wait_until,
)

TRIES_FOR_A_SET = 40
"""Requests sent when explain promises several outcomes: each of two equal shares is missed
by all of them once in 2^39 runs."""


def _service(name: str) -> dict[str, str]:
    return {"group": "", "kind": "Service", "name": name}


def _account(name: str) -> dict[str, Any]:
    return {"type": "ServiceAccount", "serviceAccount": {"name": name}}


def _policy(name: str, target: str, action: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "policy.meshpy.io/v1alpha1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name},
        "spec": {"targetRefs": [_service(target)], "action": action, "rules": rules},
    }


RESOURCES: list[dict[str, Any]] = [
    {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "payment"},
        "spec": {
            "parentRefs": [_service("payment")],
            "rules": [
                {  # 0
                    "matches": [{"path": {"type": "Exact", "value": "/charge"}, "method": "POST"}],
                    "backendRefs": [{"name": "payment-v1"}],
                },
                {  # 1
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": "/refunds"},
                            "headers": [{"name": "x-beta", "value": "1"}],
                        }
                    ],
                    "backendRefs": [{"name": "payment-v2"}],
                },
                {  # 2
                    "matches": [{"path": {"type": "RegularExpression", "value": "/orders/[0-9]+"}}],
                    "backendRefs": [
                        {"name": "payment-v1", "weight": 50},
                        {"name": "payment-v2", "weight": 50},
                    ],
                },
                {  # 3
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                    "filters": [
                        {
                            "type": "URLRewrite",
                            "urlRewrite": {
                                "path": {
                                    "type": "ReplacePrefixMatch",
                                    "replacePrefixMatch": "/v2api",
                                }
                            },
                        }
                    ],
                    "backendRefs": [{"name": "payment-v2"}],
                },
                {  # 4
                    "matches": [{"path": {"type": "PathPrefix", "value": "/status"}}],
                    "backendRefs": [{"name": "payment"}],
                },
                {  # 5
                    "matches": [{"path": {"type": "Exact", "value": "/drained"}}],
                    "backendRefs": [{"name": "payment-v1", "weight": 0}],
                },
                {  # 6
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": "/quote"},
                            "queryParams": [{"name": "currency", "value": "EUR"}],
                        }
                    ],
                    "backendRefs": [{"name": "payment-v1"}],
                },
            ],
        },
    },
    {
        "apiVersion": "policy.meshpy.io/v1alpha1",
        "kind": "BackendPolicy",
        "metadata": {"name": "payment"},
        "spec": {"targetRefs": [_service("payment")], "loadBalancer": {"type": "round_robin"}},
    },
    _policy(
        "payment-callers",
        "payment",
        "ALLOW",
        [
            {"sources": [_account("cart")], "to": [{"paths": ["/charge"], "methods": ["POST"]}]},
            {
                "sources": [_account("cart"), _account("shipping")],
                "to": [{"paths": ["/refunds/*", "/orders/*", "/v2api/*", "/status", "/quote"]}],
            },
        ],
    ),
    _policy("payment-v2-no-shipping", "payment-v2", "DENY", [{"sources": [_account("shipping")]}]),
    _policy("payment-audit-posts", "payment", "AUDIT", [{"to": [{"methods": ["POST"]}]}]),
    _policy(
        "ledger-readers",
        "ledger",
        "ALLOW",
        [{"sources": [_account("cart")], "to": [{"methods": ["GET"]}]}],
    ),
]


@dataclass(frozen=True)
class Case:
    """A request from ``caller``'s app to ``callee``, and the rule explain should name."""

    caller: str
    callee: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    rule: int | None = None
    """The payment HTTPRoute's rule that routes it; None: no rule of a route (or no route)."""


CASES = [
    # Exact path and method; the caller's identity decides.
    Case("cart", "payment", "POST", "/charge", rule=0),
    Case("shipping", "payment", "POST", "/charge", rule=0),
    Case("cart", "payment", "GET", "/charge"),  # the method fails: no route
    Case("cart", "payment", "POST", "/charge?dry=1", (("x-beta", "1"),), rule=0),
    # A header match.
    Case("cart", "payment", "GET", "/refunds/7", (("x-beta", "1"),), rule=1),
    Case("cart", "payment", "GET", "/refunds/7"),
    Case("shipping", "payment", "GET", "/refunds/7", (("x-beta", "1"),), rule=1),
    # A regular expression and a 50/50 split; shipping is refused by v2 alone.
    Case("cart", "payment", "GET", "/orders/12", rule=2),
    Case("shipping", "payment", "GET", "/orders/12", rule=2),
    Case("cart", "payment", "DELETE", "/orders/5", rule=2),
    Case("cart", "payment", "GET", "/orders/abc"),
    # A rewrite: the destination decides on the path it gets.
    Case("cart", "payment", "GET", "/api/x", rule=3),
    # The whole service, v1 and v2 by round robin; authorization by path.
    Case("cart", "payment", "GET", "/status", rule=4),
    Case("cart", "payment", "GET", "/status/extra", rule=4),
    Case("cart", "payment", "GET", "/status/../status", rule=4),
    Case("cart", "payment", "GET", "/x/../status"),  # routed as it is, not normalised
    # Weight 0 only: no backend.
    Case("cart", "payment", "GET", "/drained", rule=5),
    # Query parameters.
    Case("cart", "payment", "GET", "/quote?currency=EUR", rule=6),
    Case("cart", "payment", "GET", "/quote?currency=USD"),
    # No HTTPRoute: the service's own rule; authorization by method and by identity.
    Case("cart", "ledger", "GET", "/entries"),
    Case("cart", "ledger", "POST", "/entries"),
    Case("shipping", "ledger", "GET", "/entries"),
    # No policy at all: the mesh default (deny).
    Case("cart", "vault", "GET", "/"),
]


@dataclass
class Mesh:
    """The control plane, the callers' sidecars, and the destinations' sidecars by name."""

    server: ServerProcess
    callers: dict[str, ProxyProcess]
    destinations: dict[str, ProxyProcess]
    owners: dict[str, str]
    """Instance id -> the name of its sidecar in ``destinations``."""


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env={**FAST_LEASES, "MESHPY_AUTHZ_DEFAULT": "deny"})


@pytest.fixture
def mesh(server: ServerProcess, start_sidecar: StartSidecar) -> Mesh:
    apps = {
        "payment-v1": ("payment", "--version", "v1"),
        "payment-v2": ("payment", "--version", "v2"),
        "ledger": ("ledger",),
        "vault": ("vault",),
    }
    spawned = {
        name: start_sidecar(*args, ready=False, app=APP, name=name) for name, args in apps.items()
    }
    callers = {name: start_sidecar(name, ready=False) for name in ("cart", "shipping")}
    for sidecar in [*spawned.values(), *callers.values()]:
        wait_sidecar_ready(sidecar)
    answer = server.client().post("/api/v1/apply", json=RESOURCES)
    assert answer.status_code == 200, answer.text
    for caller in callers.values():
        for cluster in ("payment-v1", "payment-v2", "ledger", "vault"):
            wait_until(
                lambda c=caller, n=cluster: cluster_endpoints(c, f"{n}.default") == 1,
                f"{cluster} healthy",
            )
    wait_applied(server, *callers.values(), *spawned.values())
    owners = {}
    for service in ("payment", "ledger", "vault"):
        described = server.client().get(f"/api/v1/namespaces/default/services/{service}").json()
        for endpoint in described["endpoints"]:
            version = endpoint["version"]
            owners[endpoint["id"]] = f"{service}-{version}" if version else service
    return Mesh(server, callers, spawned, owners)


Outcome = tuple[str, ...]
"""("app", sidecar, method, path) for an answer of the app behind that sidecar, or
("refused", status, reason) for a sidecar's own answer."""


def expected(mesh: Mesh, explanation: dict[str, Any]) -> tuple[set[Outcome], set[str]]:
    """The outcomes explain promises, and the destination sidecars that refuse."""
    refused = explanation["refused"]
    if refused is not None:
        return {("refused", str(refused["status"]), refused["reason"])}, set()
    query = explanation["request"]["query"]
    method = explanation["request"]["method"]
    outcomes: set[Outcome] = set()
    refusing: set[str] = set()
    for backend in explanation["backends"]:
        if backend["weight"] == 0:
            continue
        if backend["refused"] is not None:
            outcomes.add(
                ("refused", str(backend["refused"]["status"]), backend["refused"]["reason"])
            )
        for destination in backend["destinations"]:
            sidecars = {mesh.owners[i] for i in destination["instances"]}
            if destination["refused"] is not None:
                status, reason = destination["refused"]["status"], destination["refused"]["reason"]
                outcomes.add(("refused", str(status), reason))
                refusing |= sidecars
            else:
                path = destination["path"] + (f"?{query}" if query else "")
                outcomes |= {("app", sidecar, method, path) for sidecar in sidecars}
    return outcomes, refusing


def _refused_counts(mesh: Mesh) -> dict[str, int]:
    """4xx answers of each destination sidecar's inbound listener so far."""
    return {
        name: admin_stats(sidecar)["listeners"]["inbound"]["requests"].get("4xx", 0)
        for name, sidecar in mesh.destinations.items()
    }


def observed(mesh: Mesh, case: Case, tries: int) -> tuple[set[Outcome], set[str]]:
    """What ``tries`` requests of ``case`` came to, and the destination sidecars that refused."""
    host, _, port = mesh.callers[case.caller].addresses["outbound"].rpartition(":")
    by_identity = {(s.service, s.version): n for n, s in _apps(mesh).items()}
    before = _refused_counts(mesh)
    outcomes: set[Outcome] = set()
    for _ in range(tries):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            # http.client sends the target byte for byte: dot segments reach the sidecar.
            conn.request(
                case.method, case.target, headers={"host": case.callee, **dict(case.headers)}
            )
            answer = conn.getresponse()
            body = answer.read()
        finally:
            conn.close()
        reason = answer.getheader("x-meshpy-error")
        if reason is not None:
            outcomes.add(("refused", str(answer.status), reason))
            continue
        assert answer.status == 200, (case, answer.status, body)
        app = json.loads(body)
        sidecar = by_identity[(app["service"], app["version"] or None)]
        outcomes.add(("app", sidecar, app["method"], app["path"]))
    after = _refused_counts(mesh)
    return outcomes, {name for name in after if after[name] > before[name]}


@dataclass(frozen=True)
class _App:
    service: str
    version: str | None


def _apps(mesh: Mesh) -> dict[str, _App]:
    return {
        name: _App(*name.split("-", 1)) if "-" in name else _App(name, None)
        for name in mesh.destinations
    }


def _explain(mesh: Mesh, case: Case) -> dict[str, Any]:
    answer = mesh.server.client().post(
        "/api/v1/explain",
        json={
            "source": {"service": case.caller},
            "destination": {"service": case.callee},
            "method": case.method,
            "path": case.target,
            "headers": [{"name": n, "value": v} for n, v in case.headers],
        },
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_explain_agrees_with_the_mesh_on_every_request_of_the_table(mesh: Mesh) -> None:
    assert len(CASES) >= 20
    seen_refusals: set[str] = set()
    for case in CASES:
        explanation = _explain(mesh, case)
        matched = explanation["route"]["matched"]
        rule = matched["rule"] if matched is not None and matched["route"] else None
        assert rule == case.rule, (case, explanation["route"])
        want, want_refusing = expected(mesh, explanation)
        tries = TRIES_FOR_A_SET if len(want) > 1 or len(want_refusing) > 1 else 3
        got, got_refusing = observed(mesh, case, tries)
        assert (got, got_refusing) == (want, want_refusing), (case, explanation)
        seen_refusals |= {outcome[2] for outcome in got if outcome[0] == "refused"}
    # The table covers every kind of answer, not only the happy path.
    assert seen_refusals == {"no_route", "no_backend", "unauthorized"}


def test_the_command_line_explains_as_the_api_does(mesh: Mesh) -> None:
    argv = ["--from", "shipping", "--to", "payment", "GET", "/orders/12"]
    common = ["--server", mesh.server.url, "--token", mesh.server.admin_token]
    as_json = _meshpy(*argv, "-o", "json", *common)
    assert as_json.returncode == 0, as_json.stderr
    api = _explain(mesh, Case("shipping", "payment", "GET", "/orders/12"))
    assert json.loads(as_json.stdout) == api
    table = _meshpy(*argv, *common)
    assert table.returncode == 0, table.stderr
    assert "HTTPRoute default/payment rule 2, match 0: path RegularExpression /orders/[0-9]+" in (
        table.stdout
    )
    assert "rule 0 of DENY policy default/payment-v2-no-shipping" in table.stdout
    assert "\x1b[" not in table.stdout, "no colour off a terminal"
    unknown = _meshpy("--from", "shipping", "--to", "paymnt", "GET", "/", *common)
    assert unknown.returncode == 2
    assert unknown.stderr == "error: --to: no service default/paymnt\n"


def _meshpy(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "meshpy", "explain", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
