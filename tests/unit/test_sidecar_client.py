"""The sidecar's control-plane client and backoff, against a real HTTP server on loopback."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meshpy.sidecar.backoff import Backoff
from meshpy.sidecar.controlplane import ControlPlaneClient, ControlPlaneError, instance_path
from meshpy.sidecar.identity import Certificate, IdentityAgent


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/echo?a=1":
            self._answer(200, {"auth": self.headers["Authorization"]})
        elif self.path == "/busy":
            self._answer(429, {"detail": "slow down"}, {"Retry-After": "7"})
        elif self.path == "/forbidden":
            self._answer(403, {"title": "Forbidden", "detail": "not your service"})
        else:
            self._answer(404, {"detail": "nothing here"})

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        self._answer(200, {"got": json.loads(self.rfile.read(length))})


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_requests_carry_the_token_and_json(server_url: str) -> None:
    client = ControlPlaneClient(server_url, "mpj_x.y")
    assert client.request("GET", "/echo", query={"a": "1"}).json() == {"auth": "Bearer mpj_x.y"}
    assert client.request("PUT", "/put", body={"health": "passing"}).json() == {
        "got": {"health": "passing"}
    }


def test_errors_say_what_and_whether_to_retry(server_url: str) -> None:
    client = ControlPlaneClient(server_url, "t")
    with pytest.raises(ControlPlaneError) as busy:
        client.request("GET", "/busy")
    assert busy.value.status == 429
    assert busy.value.retry_after == 7.0
    assert busy.value.retryable
    assert "slow down" in str(busy.value)

    with pytest.raises(ControlPlaneError) as refused:
        client.request("GET", "/forbidden")
    assert refused.value.status == 403
    assert not refused.value.retryable
    assert str(refused.value) == "GET /forbidden: 403 not your service"


def test_an_unreachable_control_plane_is_retryable() -> None:
    with pytest.raises(ControlPlaneError) as err:
        ControlPlaneClient("http://127.0.0.1:1", "t", timeout=2).request("GET", "/x")
    assert err.value.status is None
    assert err.value.retryable


def test_bad_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="must look like http://host:port"):
        ControlPlaneClient("ftp://example", "t")


def test_instance_paths_are_quoted() -> None:
    assert instance_path("default", "cart") == "/api/v1/namespaces/default/services/cart/instances"
    assert instance_path("a b", "c", "1/2").endswith("/a%20b/services/c/instances/1/2")


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(6)]
    steps = [1, 2, 4, 8, 8, 8]
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps, strict=True))
    assert backoff.next(at_least=30.0) == 30.0
    backoff.reset()
    assert backoff.next() <= 1.0


def test_renewal_is_at_about_two_thirds_of_the_time_left() -> None:
    now = 1000.0
    agent = IdentityAgent(
        ControlPlaneClient("http://127.0.0.1:1", "t"),
        proxy=None,  # type: ignore[arg-type]
        namespace="default",
        service="cart",
        clock=lambda: now,
        rng=random.Random(3),
    )
    cert = Certificate("spiffe://t/ns/default/sa/cart", "01", now - 20, now + 30, now)
    delays = [agent.renewal_delay(cert) for _ in range(200)]
    assert 0.6 * 30 <= min(delays) < max(delays) <= 0.72 * 30
    assert len({round(d, 3) for d in delays}) > 100  # jittered, not one fixed instant
    day = Certificate("spiffe://t/ns/default/sa/cart", "02", now - 20, now + 86400, now)
    assert 0.6 * 86400 <= agent.renewal_delay(day) <= 0.72 * 86400
