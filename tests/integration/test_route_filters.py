"""HTTPRoutes through the control plane and real sidecars: header and regex matches
always pick their backend, and a RequestHeaderModifier's header reaches the app."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


def _get(sidecar: ProxyProcess, path: str, headers: dict[str, str]) -> httpx.Response:
    """A request from ``sidecar``'s app to payment, through its outbound listener."""
    with httpx.Client(timeout=10) as client:
        return client.get(
            f"http://{sidecar.addresses['outbound']}{path}", headers={"host": "payment", **headers}
        )


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _version(answer: httpx.Response) -> str | None:
    return answer.json()["version"] if answer.status_code == 200 else None


ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "payment-canary"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "payment"}],
        "rules": [
            {
                "matches": [
                    {
                        "path": {"type": "PathPrefix", "value": "/pay"},
                        "headers": [{"name": "x-canary", "value": "yes"}],
                    },
                    {"path": {"type": "RegularExpression", "value": "/beta/[a-z]+"}},
                ],
                "filters": [
                    {
                        "type": "RequestHeaderModifier",
                        "requestHeaderModifier": {
                            "set": [{"name": "X-Test-Routed-By", "value": "canary-rule"}],
                            "remove": ["x-test-secret"],
                        },
                    }
                ],
                "backendRefs": [{"name": "payment-v2"}],
            },
            # A PathPrefix outranks any RegularExpression, so this one is not a catch-all.
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/pay"}}],
                "backendRefs": [{"name": "payment-v1"}],
            },
        ],
    },
}


def test_header_and_regex_matches_route_and_modified_headers_reach_the_app(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("payment", "--version", "v1", app=APP, name="payment-v1")
    start_sidecar("payment", "--version", "v2", app=APP, name="payment-v2")
    cart = start_sidecar("cart", app=APP)
    seen: set[str | None] = set()

    def both_versions() -> bool:
        seen.add(_version(_get(cart, "/", {})))
        return {"v1", "v2"} <= seen

    _wait(both_versions, "both payment versions reachable")

    answer = server.client().put("/api/v1/namespaces/default/httproutes/payment-canary", json=ROUTE)
    assert answer.status_code in (200, 201), answer.text
    canary = {"x-canary": "yes", "x-test-secret": "s", "x-test-routed-by": "client"}
    _wait(lambda: _version(_get(cart, "/pay", canary)) == "v2", "the route in the sidecar")
    _wait(lambda: _version(_get(cart, "/pay", {})) == "v1", "the route's other rule")

    for _ in range(20):
        got = _get(cart, "/pay", canary).json()
        assert (got["service"], got["version"], got["path"]) == ("payment", "v2", "/pay")
        # Set replaces the client's value; remove drops the header.
        assert got["headers"] == {"x-test-routed-by": "canary-rule"}
        got = _get(cart, "/beta/charge", {}).json()
        assert (got["version"], got["headers"]) == ("v2", {"x-test-routed-by": "canary-rule"})
        got = _get(cart, "/pay/1", {"x-canary": "no", "x-test-secret": "s"}).json()
        assert (got["version"], got["headers"]) == ("v1", {"x-test-secret": "s"})
        # The expression must match the whole path; no other rule matches: 404.
        missed = _get(cart, "/beta/charge/1", {})
        assert (missed.status_code, missed.headers["x-meshpy-error"]) == (404, "no_route")
