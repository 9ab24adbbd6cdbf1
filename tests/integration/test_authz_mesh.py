"""AuthorizationPolicy end to end: a real control plane, real sidecars over mTLS, the 403.

A `payment` sidecar sits in front of a backend; `cart` and `shipping` sidecars call it by
name through their outbound listeners. Policies are applied and deleted through the REST
API, and each test waits for the sidecars to follow them.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.backends import HttpBackend
from tests.integration.conftest import StartServer
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import spawn_sidecar, wait_sidecar_ready

FAST_LEASES = {"MESHPY_LEASE_TTL": "3s", "MESHPY_HEALTH_THRESHOLD": "1"}
POLICIES = "/api/v1/namespaces/default/authorizationpolicies"


@dataclass
class Mesh:
    """A control plane, `payment` in front of its backend, and the sidecars of its callers."""

    server: ServerProcess
    backend: HttpBackend
    payment: ProxyProcess
    callers: dict[str, ProxyProcess]

    def call(self, caller: str, method: str, path: str = "/charge") -> httpx.Response:
        """A request from ``caller``'s app: through its sidecar's outbound, to `payment`."""
        outbound = self.callers[caller].addresses["outbound"]
        with httpx.Client(timeout=5) as client:
            return client.request(method, f"http://{outbound}{path}", headers={"host": "payment"})

    def raw_status(self, caller: str, method: str, target: str) -> int:
        """The status of ``method target`` sent byte for byte (httpx would normalise it)."""
        host, _, port = self.callers[caller].addresses["outbound"].rpartition(":")
        request = (
            f"{method} {target} HTTP/1.1\r\nhost: payment\r\ncontent-length: 0\r\n"
            "connection: close\r\n\r\n"
        )
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(request.encode())
            head = conn.recv(64)
        return int(head.split(b" ", 2)[1])

    def until(self, caller: str, method: str, status: int, timeout: float = 15.0) -> None:
        """Wait until ``caller``'s ``method /charge`` gets ``status`` (the config arrived)."""
        deadline = time.monotonic() + timeout
        while (got := self.call(caller, method)).status_code != status:
            if time.monotonic() > deadline:
                msg = f"{caller} {method} /charge: {got.status_code} {got.headers}, not {status}"
                raise AssertionError(msg)
            time.sleep(0.1)

    def put_policy(self, name: str, action: str, rules: list[dict[str, Any]]) -> None:
        """Create or replace the AuthorizationPolicy ``name`` on `payment`."""
        policy = {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
                "action": action,
                "rules": rules,
            },
        }
        answer = self.server.client().put(f"{POLICIES}/{name}", json=policy)
        assert answer.status_code in (200, 201), answer.text

    def delete_policy(self, name: str) -> None:
        """Delete the AuthorizationPolicy ``name``."""
        answer = self.server.client().delete(f"{POLICIES}/{name}")
        assert answer.status_code in (200, 204), answer.text


StartMesh = Callable[..., Mesh]


@pytest.fixture
def start_mesh(
    tmp_path: Path,
    start_server: StartServer,
    http_backend: Callable[[str], HttpBackend],
) -> Iterator[StartMesh]:
    started: list[ProxyProcess] = []

    def start(callers: tuple[str, ...], **env: str) -> Mesh:
        server = start_server(env={**FAST_LEASES, **env})
        backend = http_backend("payment-app")
        app_port = backend.address.rsplit(":", 1)[1]
        # Started together, then waited for: the sidecars enrol in parallel.
        payment = spawn_sidecar(tmp_path, server, "payment", "--app-port", app_port)
        started.append(payment)
        for caller in callers:
            started.append(spawn_sidecar(tmp_path, server, caller))
        for sidecar in started:
            wait_sidecar_ready(sidecar)
        mesh = Mesh(server, backend, payment, dict(zip(callers, started[1:], strict=True)))
        for caller in callers:
            # payment turns healthy after its first report; until then callers get 503.
            mesh.until(caller, "GET", 200)
        return mesh

    yield start
    # Each sidecar keeps serving a moment after deregistering: signal all, then wait.
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.send_signal(signal.SIGTERM)
    for proc in started:
        proc.stop()


def _refused(answer: httpx.Response) -> bool:
    return answer.status_code == 403 and answer.headers.get("x-meshpy-error") == "unauthorized"


CART_POSTS_CHARGE = [
    {
        "sources": [{"type": "ServiceAccount", "serviceAccount": {"name": "cart"}}],
        "to": [{"paths": ["/charge"], "methods": ["POST"]}],
    }
]


def test_policies_applied_and_deleted_through_the_api(start_mesh: StartMesh) -> None:
    mesh = start_mesh(("cart", "shipping"))
    mesh.put_policy("payment-callers", "ALLOW", CART_POSTS_CHARGE)
    mesh.until("cart", "GET", 403)

    reached = mesh.backend.count
    assert mesh.call("cart", "POST").status_code == 200
    assert mesh.backend.count == reached + 1
    seen = mesh.backend.seen[-1]
    assert (seen.method, seen.path) == ("POST", "/charge")
    assert seen.header("x-meshpy-client-id") == ["spiffe://meshpy.local/ns/default/sa/cart"]
    for caller, method in [("cart", "GET"), ("shipping", "POST"), ("shipping", "GET")]:
        answer = mesh.call(caller, method)
        assert _refused(answer), (caller, method, answer.status_code, answer.headers)
    # A path that normalises to /charge is /charge; one that does not is not allowed.
    assert mesh.raw_status("cart", "POST", "/refunds/../charge") == 200
    assert mesh.raw_status("cart", "POST", "//charge") == 200
    assert mesh.raw_status("cart", "POST", "/charge/x/..") == 403  # /charge/ is not /charge
    assert mesh.backend.count == reached + 3
    assert [s.path for s in mesh.backend.seen[-2:]] == ["/charge", "/charge"]

    # A DENY policy wins over the ALLOW one.
    mesh.put_policy(
        "no-charges-from-cart",
        "DENY",
        [{"sources": [{"type": "ServiceAccount", "serviceAccount": {"name": "cart"}}]}],
    )
    mesh.until("cart", "POST", 403)
    assert _refused(mesh.call("cart", "POST"))
    assert mesh.backend.count == reached + 3

    # Without policies everyone is allowed again (the mesh default).
    mesh.delete_policy("payment-callers")
    mesh.delete_policy("no-charges-from-cart")
    mesh.until("shipping", "POST", 200)
    assert mesh.call("cart", "GET").status_code == 200
    assert mesh.call("cart", "POST").status_code == 200


def test_all_authenticated_refuses_plaintext_in_permissive_mode(start_mesh: StartMesh) -> None:
    mesh = start_mesh(("cart",), MESHPY_MTLS="permissive", MESHPY_AUTHZ_DEFAULT="all-authenticated")
    reached = mesh.backend.count
    inbound = mesh.payment.addresses["inbound"]
    with httpx.Client(timeout=5) as client:
        plaintext = client.post(f"http://{inbound}/charge", headers={"host": "payment"})
    assert _refused(plaintext), (plaintext.status_code, plaintext.headers, plaintext.text)
    assert mesh.backend.count == reached
    # The same request from cart's sidecar arrives over mTLS, with an identity.
    assert mesh.call("cart", "POST").status_code == 200
    assert mesh.backend.seen[-1].header("x-meshpy-client-id") == [
        "spiffe://meshpy.local/ns/default/sa/cart"
    ]
