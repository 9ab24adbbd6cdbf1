"""A tiny HTTP backend for demos: answers every request with its method, path and headers as JSON.

Usage: python examples/echo_backend.py 127.0.0.1:18081
"""

from __future__ import annotations

import contextlib
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    """Replies 200 with a JSON description of the request."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(
            {
                "backend": "{}:{}".format(*self.server.server_address[:2]),
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers.items()),
            },
            indent=2,
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("backend: " + (format % args) + "\n")


def main() -> None:
    host, _, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:18081").rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), EchoHandler)
    print(f"backend: listening on {host}:{port}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
