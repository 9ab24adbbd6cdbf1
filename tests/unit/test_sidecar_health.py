"""The sidecar's health probes against real sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meshpy.sidecar.health import HealthCheck, probe
from tests.integration.backends import closed_port


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def app_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_probes(app_port: int) -> None:
    assert probe(app_port, None, 1.0)
    assert probe(app_port, "/healthz", 1.0)
    assert not probe(app_port, "/broken", 1.0)  # 503
    assert not probe(int(closed_port().rsplit(":", 1)[1]), None, 1.0)


def test_verdicts_flip_and_are_reported_at_once(app_port: int) -> None:
    changes: list[bool] = []
    check = HealthCheck(app_port, "/healthz", failures=2, on_change=changes.append)
    assert not check.healthy
    assert check.check()
    assert changes == [True]  # the first pass is reported, not left to the next renewal
    check.path = "/broken"
    assert check.check()  # one failure is not enough
    assert not check.check()
    assert changes == [True, False]
    check.mark_down()
    assert not check.healthy
