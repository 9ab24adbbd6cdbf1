"""The sidecar's config watcher against a real HTTP server on loopback and a real core:
what it acks for a snapshot the core refuses."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from meshpy import _core
from meshpy.sidecar.configwatch import ConfigWatcher
from meshpy.sidecar.controlplane import ControlPlaneClient


class _ControlPlane(ThreadingHTTPServer):
    snapshot: dict[str, object]
    acks: list[dict[str, object]]


class _Handler(BaseHTTPRequestHandler):
    server: _ControlPlane

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps(self.server.snapshot).encode()
        self.send_response(200)
        self.send_header("ETag", '"e2"')
        self.send_header("X-Meshpy-Version", "2")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.acks.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def control_plane() -> Iterator[_ControlPlane]:
    server = _ControlPlane(("127.0.0.1", 0), _Handler)
    server.acks = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_listener_that_cannot_bind_is_acked_as_a_rejection(
    control_plane: _ControlPlane,
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        control_plane.snapshot = {
            "listeners": [
                {"name": "db", "address": f"127.0.0.1:{port}", "protocol": "tcp", "cluster": "c"}
            ],
            "clusters": [{"name": "c"}],
        }
        proxy = _core.Proxy("{}")
        proxy.apply(json.dumps({"listeners": [], "clusters": []}))
        proxy.start()  # a running proxy binds what a snapshot names as it applies it
        try:
            url = f"http://127.0.0.1:{control_plane.server_address[1]}"
            watcher = ConfigWatcher(ControlPlaneClient(url, "mpj_x.y"), proxy, "i-1", 0)
            assert watcher.poll_once(wait_s=0) is False
        finally:
            proxy.shutdown(0)
    [ack] = control_plane.acks
    assert (ack["version"], ack["etag"]) == (2, "e2")
    assert f"cannot bind 127.0.0.1:{port}" in str(ack["error"])
    # Not fetched again and again: the next poll names the rejected snapshot's ETag.
    assert (watcher.etag, watcher.version) == ("e2", None)
