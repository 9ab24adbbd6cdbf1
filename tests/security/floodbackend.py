"""The floods' backend, run as its own process so that its hundreds of handler threads never
compete with the test's benign client for the interpreter: ``/slow?s=N`` answers after N
seconds (at most 10), ``/big?bytes=N`` answers N bytes, POST reads the whole body (chunked
or not) first, anything else answers a short text at once."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.security.slowclients import spawn_listening

REPO_ROOT = Path(__file__).resolve().parents[2]

# A handler blocked on a peer that neither reads nor writes gives up after this.
BACKEND_SOCKET_TIMEOUT_S = 30.0
BIG_BODY_CHUNK = 64 * 1024
MAX_SLOW_S = 10.0
START_TIMEOUT_S = 15.0


class _FloodHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = BACKEND_SOCKET_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        # Head and body are separate writes: without this, Nagle and delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/slow":
            # The process is stopped by signal, which ends a waiting handler too.
            time.sleep(min(float(query.get("s", ["1"])[0]), MAX_SLOW_S))
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

    def handle_error(self, request: object, client_address: object) -> None:
        # The proxy dropping an upstream request when its client is cut is no failure.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def start() -> tuple[subprocess.Popen[bytes], str]:
    """Start the backend on a free loopback port: (its process, ``127.0.0.1:port``) once it
    listens. The caller stops it by its PID (``slowclients.stop_process``)."""
    argv = [sys.executable, "-m", "tests.security.floodbackend"]
    return spawn_listening(argv, "the flood backend", START_TIMEOUT_S, cwd=REPO_ROOT)


def main() -> None:
    """Serve on 127.0.0.1 (``--port``, 0 for a free one) and print the bound address."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    server = _FloodServer(("127.0.0.1", parser.parse_args().port), _FloodHandler)
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever(0.05)


if __name__ == "__main__":
    main()
