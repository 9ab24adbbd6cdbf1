"""Fixtures of the security suites: the proxy fixtures of the integration tests, and a backend
that can answer slowly, with a large body, or after reading an endless upload."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integration.conftest import start_proxy
from tests.security.slowclients import raise_open_files_limit, start_backend, stop_process

__all__ = ["start_proxy"]

# A handler blocked on a peer that neither reads nor writes gives up after this.
BACKEND_SOCKET_TIMEOUT_S = 30.0
BIG_BODY_CHUNK = 64 * 1024
MAX_SLOW_S = 10.0


@dataclass
class FloodBackend:
    """An HTTP/1.1 backend for floods: ``/slow?s=N`` answers after N seconds (at most 10, or
    at close), ``/big?bytes=N`` answers N bytes, POST reads the whole body (chunked or not)
    first, anything else answers a short text at once."""

    server: _FloodServer = field(repr=False)

    @property
    def address(self) -> str:
        """The bound ``127.0.0.1:port``."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        """Release waiting handlers, stop serving, close the listening socket."""
        self.server.closing.set()
        self.server.shutdown()
        self.server.server_close()


class _FloodHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = BACKEND_SOCKET_TIMEOUT_S
    server: _FloodServer

    def setup(self) -> None:
        super().setup()
        # Head and body are separate writes: without this, Nagle and delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/slow":
            self.server.closing.wait(min(float(query.get("s", ["1"])[0]), MAX_SLOW_S))
        if url.path == "/big":
            self._answer_big(int(query.get("bytes", ["0"])[0]))
        else:
            # Long enough for h2spec's flow-control cases, which need 5 bytes or more.
            self._answer(b"served by the flood backend\n")

    def do_POST(self) -> None:
        received = self._read_body()
        self._answer(f"received {received} bytes\n".encode())

    def _read_body(self) -> int:
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            length = int(self.headers.get("content-length") or 0)
            return len(self.rfile.read(length))
        received = 0
        # An empty line is EOF: the proxy gave up on the upload (its client reset it).
        while (line := self.rfile.readline()) and (size := int(line.split(b";")[0], 16)):
            received += len(self.rfile.read(size))
            self.rfile.readline()
        while line and self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return received

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer_big(self, size: int) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(size))
        self.end_headers()
        chunk = b"z" * BIG_BODY_CHUNK
        for start in range(0, size, BIG_BODY_CHUNK):
            self.wfile.write(chunk[: size - start])

    def log_message(self, format: str, *args: object) -> None:
        pass


class _FloodServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The proxy may open hundreds of upstream connections at once during a flood.
    request_queue_size = 1024

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FloodHandler)
        self.closing = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        # The proxy dropping an upstream request when its client is cut is no test failure.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


@pytest.fixture
def flood_backend() -> Iterator[FloodBackend]:
    """A backend for floods, closed after the test."""
    backend = FloodBackend(_FloodServer())
    threading.Thread(
        target=backend.server.serve_forever, args=(0.05,), name="flood-backend", daemon=True
    ).start()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def slow_client_backend() -> Iterator[str]:
    """The slow-client attacks' backend (``slowclients backend``, its own process) for
    the module: ``127.0.0.1:port``; stopped by its PID after the module's tests."""
    raise_open_files_limit()  # hundreds of attacking connections, and the proxy inherits it
    proc, address = start_backend()
    yield address
    stop_process(proc)
