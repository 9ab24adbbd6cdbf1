"""Real backends for integration tests: HTTP/1.1, h2c and TCP echo servers on 127.0.0.1:0."""

from __future__ import annotations

import atexit
import json
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Seen:
    """One request as the backend received it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        """Return every value of header ``name`` (case-insensitive)."""
        return [v for k, v in self.headers if k.lower() == name.lower()]


@dataclass
class HttpBackend:
    """An HTTP server (HTTP/1.1, or h2c) that answers JSON and records what it received.

    ``/slow?s=1.5`` sleeps before answering and sets ``slow_started`` on arrival.
    """

    name: str
    server: socketserver.TCPServer = field(repr=False)
    seen: list[Seen] = field(default_factory=list)
    slow_started: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def address(self) -> str:
        """The bound ``127.0.0.1:port``."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    @property
    def count(self) -> int:
        """Number of requests received so far."""
        with self.lock:
            return len(self.seen)

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Head and body are two writes: without this, Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        backend = self.server.backend
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.command, self.path, list(self.headers.items()), body)
        with backend.lock:
            backend.seen.append(seen)
        url = urlsplit(self.path)
        if url.path == "/slow":
            backend.slow_started.set()
            time.sleep(float(parse_qs(url.query).get("s", ["1"])[0]))
        answer = {"backend": backend.name, "method": self.command, "path": self.path}
        payload = json.dumps({**answer, "body_len": len(body)}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.send_header("x-backend", backend.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815 - http.server names

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietErrors:
    """Peers closing early (the proxy dropping an aborted request) are not test failures."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[misc]


class _Server(_QuietErrors, ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    backend: HttpBackend


def start_http_backend(name: str) -> HttpBackend:
    """Start an HTTP backend called ``name`` on 127.0.0.1:0 in a daemon thread."""
    server = _Server(("127.0.0.1", 0), _Handler)
    backend = HttpBackend(name=name, server=server)
    server.backend = backend
    threading.Thread(
        target=server.serve_forever, args=(0.05,), name=f"backend-{name}", daemon=True
    ).start()
    return backend


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        while chunk := conn.recv(65536):
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)


class _EchoServer(_QuietErrors, socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


@dataclass
class TcpEcho:
    """A TCP server that sends back every byte and closes after the client half-closes."""

    server: _EchoServer = field(repr=False)

    @property
    def address(self) -> str:
        """The bound ``127.0.0.1:port``."""
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()


def start_tcp_echo() -> TcpEcho:
    """Start a TCP echo server on 127.0.0.1:0 in a daemon thread."""
    server = _EchoServer(("127.0.0.1", 0), _EchoHandler)
    threading.Thread(
        target=server.serve_forever, args=(0.05,), name="tcp-echo", daemon=True
    ).start()
    return TcpEcho(server)


class _H2Handler(socketserver.BaseRequestHandler):
    """Serves h2c with prior knowledge: every request gets 200 and a JSON body."""

    server: _H2Server

    def handle(self) -> None:
        import h2.config
        import h2.connection
        import h2.events

        conn: socket.socket = self.request
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        h2conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        heads: dict[int, list[tuple[str, str]]] = {}
        bodies: dict[int, bytes] = {}
        while data := conn.recv(65536):
            for event in h2conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    heads[event.stream_id] = [(str(k), str(v)) for k, v in event.headers]
                    bodies[event.stream_id] = b""
                elif isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] += event.data
                    h2conn.acknowledge_received_data(len(event.data), event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self._respond(h2conn, event.stream_id, heads, bodies)
            conn.sendall(h2conn.data_to_send())

    def _respond(
        self,
        h2conn: Any,
        stream_id: int,
        heads: dict[int, list[tuple[str, str]]],
        bodies: dict[int, bytes],
    ) -> None:
        headers, body = heads.pop(stream_id), bodies.pop(stream_id)
        pseudo = dict(h for h in headers if h[0].startswith(":"))
        backend = self.server.backend
        with backend.lock:
            backend.seen.append(Seen(pseudo[":method"], pseudo[":path"], headers, body))
        answer = {"backend": backend.name, "path": pseudo[":path"], "body_len": len(body)}
        payload = json.dumps(answer).encode()
        h2conn.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", str(len(payload))),
            ],
        )
        h2conn.send_data(stream_id, payload, end_stream=True)


class _H2Server(_QuietErrors, socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    backend: HttpBackend


def start_h2c_backend(name: str) -> HttpBackend:
    """Start an h2c (HTTP/2 prior knowledge) backend on 127.0.0.1:0 in a daemon thread."""
    server = _H2Server(("127.0.0.1", 0), _H2Handler)
    backend = HttpBackend(name=name, server=server)
    server.backend = backend
    threading.Thread(
        target=server.serve_forever, args=(0.05,), name=f"h2c-{name}", daemon=True
    ).start()
    return backend


_HELD_PORTS: list[socket.socket] = []
atexit.register(lambda: [sock.close() for sock in _HELD_PORTS])


def closed_port() -> str:
    """Return ``127.0.0.1:port`` where nothing listens, and nothing will while the tests
    run: this process keeps the port bound without listening (so connections to it are
    refused), and no other process (a test run alongside) can bind it meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(sock)
    return f"127.0.0.1:{sock.getsockname()[1]}"
