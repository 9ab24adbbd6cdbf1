"""A tiny app for `meshpy run` tests: ``python -m tests.integration.meshapp [echo]``.

It listens on ``$PORT`` and answers GET, POST, PUT and DELETE requests with JSON naming
itself (service, version, pid) and what it got (method, path, client id, ``x-test-*``
headers).
``/call/<service>/<path>`` calls another service by name through the sidecar
(``HTTP_PROXY``), as a real app would with any HTTP client, passing the request's trace
headers on, and answers with what it got.

``/sleep/<seconds>`` answers after that long.

Misbehaviour for resilience tests: ``--fail-rate R`` (0..1) answers that share of requests
with a 500 (``--fail-status`` another status), evenly spread and reproducible: with 0.1,
every tenth request fails; ``--fail-file PATH`` fails every request while PATH exists;
``--delay S`` waits S seconds before each answer.
"""

from __future__ import annotations

import argparse
import json
import os
import socketserver
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from meshpy.tracing import propagation_headers


class _Failures:
    """Whether the next request fails, so that ``rate`` of them do, spread evenly, or all
    of them while ``file`` exists."""

    def __init__(
        self, rate: float, status: int = 500, file: str | None = None, delay: float = 0.0
    ) -> None:
        self.rate = rate
        self.status = status
        self.file = file
        self.delay = delay
        self.count = 0
        self.lock = threading.Lock()

    def next(self) -> bool:
        if self.file is not None and os.path.exists(self.file):
            return True
        if not self.rate:
            return False
        with self.lock:
            self.count += 1
            return int(self.count * self.rate) > int((self.count - 1) * self.rate)


_failures = _Failures(0.0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stalls

    def do_GET(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)  # read whole, so the connection can serve the next
        if _failures.delay:
            time.sleep(_failures.delay)
        if _failures.next():
            status, body = _failures.status, {"error": "failing on purpose", "pid": os.getpid()}
        elif self.path.startswith("/call/"):
            service, _, rest = self.path[len("/call/") :].partition("/")
            status, body = _call(f"http://{service}/{rest}", propagation_headers(self.headers))
        else:
            if self.path.startswith("/sleep/"):
                time.sleep(float(self.path[len("/sleep/") :]))
            status, body = (
                200,
                {
                    "service": os.environ.get("MESHPY_SERVICE"),
                    "version": os.environ.get("MESHPY_VERSION"),
                    "pid": os.getpid(),
                    "method": self.command,
                    "path": self.path,
                    "client_id": self.headers.get("x-meshpy-client-id"),
                    "headers": {
                        name.lower(): value
                        for name, value in self.headers.items()
                        if name.lower().startswith("x-test-")
                    },
                },
            )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.do_GET()

    def do_PUT(self) -> None:
        self.do_GET()

    def do_DELETE(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _call(url: str, headers: dict[str, str]) -> tuple[int, object]:
    # urllib reads HTTP_PROXY from the environment, like most HTTP clients. The trace
    # headers go on, as every app's must for its calls to join the request's trace.
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=10
        ) as answer:
            return 200, {"status": answer.status, "body": json.loads(answer.read())}
    except urllib.error.HTTPError as err:
        return 502, {"status": err.code, "error": err.headers.get("x-meshpy-error")}


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def main() -> None:
    """Serve HTTP (or, with the argument ``echo``, a TCP echo) on 127.0.0.1:$PORT."""
    global _failures  # noqa: PLW0603 - set once, before serving
    parser = argparse.ArgumentParser(prog="meshapp")
    parser.add_argument("mode", nargs="?", choices=["echo"])
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-status", type=int, default=500)
    parser.add_argument("--fail-file")
    parser.add_argument("--delay", type=float, default=0.0)
    options = parser.parse_args()
    _failures = _Failures(options.fail_rate, options.fail_status, options.fail_file, options.delay)
    address = ("127.0.0.1", int(os.environ["PORT"]))
    server: socketserver.ThreadingTCPServer
    if options.mode == "echo":
        server = socketserver.ThreadingTCPServer(address, _Echo)
    else:
        server = ThreadingHTTPServer(address, _Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
