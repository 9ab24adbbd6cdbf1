"""Config distribution: long-poll by ETag, acks, sync status, and snapshots a real core serves."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest

from meshpy import _core
from meshpy.snapshot import MeshIdentity, MeshTracing, build_snapshot
from tests.api.conftest import StartServer
from tests.api.live import LiveServer

ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "payment-canary", "namespace": "default"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "payment"}],
        "rules": [
            {
                "backendRefs": [
                    {"name": "payment-v1", "weight": 90},
                    {"name": "payment-v2", "weight": 10},
                ]
            }
        ],
    },
}


def _healthy(api: LiveServer, service: str, **body: Any) -> str:
    reg = api.register(service, **body)
    lease = f"/api/v1/namespaces/default/services/{service}/instances/{reg['id']}/lease"
    assert api.admin.put(lease, json={"health": "passing"}).json()["state"] == "healthy"
    return str(reg["id"])


def _config(
    client: httpx.Client, instance: str, etag: str | None = None, **params: Any
) -> httpx.Response:
    headers = {"If-None-Match": f'"{etag}"'} if etag else {}
    return client.get(
        f"/api/v1/proxies/{instance}/config",
        params={"outbound_port": 0, **params},
        headers=headers,
        timeout=30,
    )


def _etag(response: httpx.Response) -> str:
    return response.headers["etag"].strip('"')


def test_config_is_the_built_snapshot_and_long_polls_by_etag(api: LiveServer) -> None:
    cart = _healthy(api, "cart", app_port=8080)
    _healthy(api, "payment", version="v1", inbound_port=16001)
    first = _config(api.admin, cart)
    assert first.status_code == 200, first.text
    doc = first.json()
    assert doc["version"] == int(first.headers["x-meshpy-version"])
    hosts = {vh["name"] for vh in doc["listeners"][1]["routes"]}
    assert {"payment.default", "payment-v1.default", "cart.default"} <= hosts
    assert doc["listeners"][0]["name"] == "inbound"

    # Nothing changed: the wait ends with 304.
    started = time.monotonic()
    unchanged = _config(api.admin, cart, _etag(first), wait="500ms")
    assert unchanged.status_code == 304
    assert time.monotonic() - started >= 0.45

    # A route applied while a watcher waits wakes it with the new content.
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(_config, api.client(admin=True), cart, _etag(first), wait="20s")
        time.sleep(0.3)
        assert api.admin.put(
            "/api/v1/namespaces/default/httproutes/payment-canary", json=ROUTE
        ).status_code in (200, 201)
        changed = waiting.result(timeout=20)
    assert changed.status_code == 200
    assert _etag(changed) != _etag(first)
    payment = next(
        vh for vh in changed.json()["listeners"][1]["routes"] if vh["name"] == "payment.default"
    )
    assert payment["rules"][0]["backends"] == [
        {"cluster": "payment-v1.default", "weight": 90},
        {"cluster": "payment-v2.default", "weight": 10},
    ]


def test_version_long_poll_waits_for_a_newer_revision(api: LiveServer) -> None:
    cart = _healthy(api, "cart")
    first = _config(api.admin, cart).json()["version"]
    unchanged = _config(api.admin, cart, version=first, wait="300ms")
    assert (unchanged.status_code, unchanged.headers.get("etag")) == (304, None)
    assert _config(api.admin, cart, version=first - 1).json()["version"] == first
    _healthy(api, "payment", inbound_port=16001)
    assert _config(api.admin, cart, version=first, wait="5s").json()["version"] > first


def test_unrelated_changes_do_not_wake_a_watcher(api: LiveServer) -> None:
    cart = _healthy(api, "cart")
    first = _config(api.admin, cart)
    # A consumer route in another namespace changes only that namespace's sidecars.
    other = json.loads(json.dumps(ROUTE))
    other["metadata"] = {"name": "elsewhere", "namespace": "other"}
    other["spec"]["parentRefs"][0]["namespace"] = "default"
    other["spec"]["rules"][0]["backendRefs"] = [{"name": "cart", "namespace": "default"}]
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(_config, api.client(admin=True), cart, _etag(first), wait="1500ms")
        time.sleep(0.2)
        response = api.admin.put("/api/v1/namespaces/other/httproutes/elsewhere", json=other)
        assert response.status_code in (200, 201), response.text
        assert waiting.result(timeout=10).status_code == 304


def test_acks_and_sync_status(api: LiveServer) -> None:
    cart = _healthy(api, "cart")
    token = api.join_token("cart")
    client = api.client(token)

    def statuses() -> dict[str, str]:
        response = api.admin.get("/api/v1/proxies")
        assert response.status_code == 200, response.text
        return {p["instance"]: p["status"] for p in response.json()}

    assert statuses() == {cart: "NOT SENT"}
    got = _config(client, cart)
    ack = {"version": got.json()["version"], "etag": _etag(got)}
    assert client.put(f"/api/v1/proxies/{cart}/ack", json=ack).status_code == 204
    assert statuses() == {cart: "SYNCED"}
    payment = _healthy(api, "payment", inbound_port=16001)
    assert statuses() == {cart: "STALE", payment: "NOT SENT"}
    newer = _config(client, cart, _etag(got))
    rejected = {"version": newer.json()["version"], "etag": _etag(newer), "error": "bad"}
    assert client.put(f"/api/v1/proxies/{cart}/ack", json=rejected).status_code == 204
    listed = {p["instance"]: p for p in api.admin.get("/api/v1/proxies").json()}
    assert (listed[cart]["status"], listed[cart]["error"]) == ("STALE", "bad")


def test_join_tokens_only_see_their_own_proxies(api: LiveServer) -> None:
    cart = _healthy(api, "cart")
    payment_client = api.client(api.join_token("payment"))
    assert _config(payment_client, cart).status_code == 403
    assert payment_client.get("/api/v1/proxies").status_code == 403
    assert _config(api.admin, "00000000-0000-0000-0000-000000000000").status_code == 404
    assert _config(api.admin, cart, wait="2h").status_code == 422


class _Named(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backends() -> Iterator[dict[str, int]]:
    """Two HTTP apps on free ports, answering their name."""
    servers = {}
    for name in ("v1", "v2"):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Named)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield {name: s.server_address[1] for name, s in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


def test_a_real_core_routes_by_the_distributed_snapshot(
    start_server: StartServer, backends: dict[str, int]
) -> None:
    """Registry → snapshot → long-poll → core: a canary split reaches real backends."""
    # Each payment instance's "sidecar inbound" is the app itself here, so plaintext; the
    # same over mTLS between real sidecars is in tests/integration/test_sidecar_mesh.py.
    api = start_server(mtls="disabled")
    _healthy(api, "payment", version="v1", inbound_port=backends["v1"])
    _healthy(api, "payment", version="v2", inbound_port=backends["v2"])
    cart = _healthy(api, "cart")
    route = json.loads(json.dumps(ROUTE))
    route["spec"]["rules"][0]["backendRefs"] = [
        {"name": "payment-v1", "weight": 3},
        {"name": "payment-v2", "weight": 1},
    ]
    assert api.admin.put(
        "/api/v1/namespaces/default/httproutes/payment-canary", json=route
    ).status_code in (200, 201)
    got = _config(api.admin, cart)
    proxy = _core.Proxy("{}")
    try:
        assert proxy.apply(got.text) == got.json()["version"]
        outbound = proxy.start()["outbound"]
        counts = {"v1": 0, "v2": 0}
        with httpx.Client(base_url=f"http://{outbound}") as client:
            for _ in range(200):
                counts[client.get("/charge", headers={"host": "payment"}).text] += 1
            assert client.get("/", headers={"host": "nobody"}).status_code == 404
        assert 120 <= counts["v1"] <= 180, counts
    finally:
        proxy.shutdown(1.0)


def test_served_snapshot_equals_the_pure_builder(api: LiveServer) -> None:
    cart = _healthy(api, "cart", app_port=9000)
    _healthy(api, "payment", version="v2", inbound_port=16002)
    api.admin.put("/api/v1/namespaces/default/httproutes/payment-canary", json=ROUTE)
    served = _config(api.admin, cart).json()
    from meshpy.registry.db import Database
    from meshpy.registry.meshstate import load_mesh_state
    from meshpy.snapshot import SidecarPorts

    db = Database(api.settings.database_url)
    try:
        with db.transaction(write=False) as session:
            mesh = load_mesh_state(session)
    finally:
        db.dispose()
    identity = MeshIdentity(trust_domain=api.settings.trust_domain, mtls=api.settings.mtls)
    tracing = MeshTracing(sample_percent=api.settings.trace_sample_percent)
    assert served == build_snapshot(
        replace(mesh, identity=identity, tracing=tracing), cart, SidecarPorts(outbound=0)
    )
    assert served["tracing"]["service"] == "cart"
    assert served["clusters"][0]["tls"] == {"identity": "spiffe://meshpy.local/ns/default/sa/cart"}


def test_large_snapshots_are_gzipped_for_clients_that_accept_it(api: LiveServer) -> None:
    cart = _healthy(api, "cart")
    for i in range(40):
        api.register(f"svc{i}", inbound_port=16000 + i)
    zipped = _config(api.admin, cart)  # httpx asks for gzip and decodes it
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding"
    plain = api.admin.get(
        f"/api/v1/proxies/{cart}/config",
        params={"outbound_port": 0},
        headers={"Accept-Encoding": "identity"},
    )
    assert "content-encoding" not in plain.headers
    assert len(plain.content) > 4096
    assert plain.json() == zipped.json()
    assert plain.headers["etag"] == zipped.headers["etag"]


def test_upstreams_add_local_tcp_listeners_and_keep_the_etag(api: LiveServer) -> None:
    cart = _healthy(api, "cart")
    _healthy(api, "payment", inbound_port=16002)
    plain = _config(api.admin, cart)
    with_upstreams = _config(api.admin, cart, upstreams="payment:7000,nothing.billing:7001")
    listeners = {lst["name"]: lst for lst in with_upstreams.json()["listeners"]}
    assert listeners["upstream-7000"] == {
        "name": "upstream-7000",
        "address": "127.0.0.1:7000",
        "protocol": "tcp",
        "direction": "outbound",
        "cluster": "payment.default",
    }
    assert "upstream-7001" not in listeners  # no such service (yet)
    assert _etag(with_upstreams) == _etag(plain)
    assert _core.Proxy("{}").apply(with_upstreams.text) == with_upstreams.json()["version"]
    for bad in ("payment", "Payment:7000", "payment:0", "payment:7000,cart:7000", "payment:99999"):
        answer = _config(api.admin, cart, upstreams=bad)
        assert answer.status_code == 422, bad
        assert answer.json()["errors"][0]["path"] == "upstreams"


def test_a_tracing_policy_sets_the_sampling_of_its_services_sidecars(api: LiveServer) -> None:
    cart = _healthy(api, "cart")
    payment = _healthy(api, "payment", inbound_port=16002)
    before = _config(api.admin, payment)
    mesh = api.settings.trace_sample_percent
    assert before.json()["tracing"]["sample_percent"] == mesh
    policy = {
        "apiVersion": "policy.meshpy.io/v1alpha1",
        "kind": "TracingPolicy",
        "metadata": {"name": "payment", "namespace": "default"},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
            "samplePercent": 100,
        },
    }
    put = api.admin.put("/api/v1/namespaces/default/tracingpolicies/payment", json=policy)
    assert put.status_code == 201, put.text
    (accepted,) = put.json()["status"]["conditions"]
    assert (accepted["type"], accepted["status"]) == ("Accepted", "True")
    after = _config(api.admin, payment)
    assert after.json()["tracing"]["sample_percent"] == 100
    assert _etag(after) != _etag(before), "the sidecar is told"
    assert _config(api.admin, cart).json()["tracing"]["sample_percent"] == mesh
    bad = {**policy, "spec": {**policy["spec"], "samplePercent": 101}}
    refused = api.admin.put("/api/v1/namespaces/default/tracingpolicies/payment", json=bad)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["path"] == "spec.samplePercent"
