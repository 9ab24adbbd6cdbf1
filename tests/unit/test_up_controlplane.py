"""`meshpy up` learns its control plane's URL from the ready file its own child wrote, only."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from meshpy.readyfile import Ready, write_ready
from meshpy.up.controlplane import READY_FILE, ControlPlane, StartError
from meshpy.up.procs import Child, Processes


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def answering_readyz() -> Iterator[str]:
    """A stand-in for the server's REST API: its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def child(tmp_path: Path, *argv: str) -> Iterator[Child]:
    started = Processes(tmp_path / "logs").spawn("server", argv, env=os.environ, cwd=tmp_path)
    try:
        yield started
    finally:
        if started.running():
            started.proc.kill()
        started.proc.wait(5)


def test_a_ready_file_of_another_process_is_not_taken(tmp_path: Path) -> None:
    (tmp_path / "admin-token").write_text("token\n")
    with child(tmp_path, "sleep", "30") as server_child, answering_readyz() as url:
        server = ControlPlane(server_child, tmp_path)
        write_ready(tmp_path / READY_FILE, Ready(url, os.getpid()))  # not the child's PID
        stopping = threading.Event()
        timer = threading.Timer(0.5, stopping.set)
        timer.start()
        server.wait_ready(stopping)
        timer.cancel()
        assert server.url == ""

        write_ready(tmp_path / READY_FILE, Ready(url, server_child.pid))
        server.wait_ready(threading.Event())
        assert server.url == url
        assert server.admin_token == "token"
        server.close()


def test_a_server_that_exits_before_its_ready_file_is_a_start_error(tmp_path: Path) -> None:
    with child(tmp_path, "sh", "-c", "echo cannot listen; exit 3") as server_child:
        server = ControlPlane(server_child, tmp_path)
        with pytest.raises(StartError, match="the control plane exited with code 3") as raised:
            server.wait_ready(threading.Event())
        assert raised.value.child is server_child
