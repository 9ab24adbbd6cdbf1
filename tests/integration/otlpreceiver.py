"""A bare OTLP/HTTP traces receiver for tests: records each export's headers and decoded spans."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class Export:
    """One POST: its headers, and its spans with the resource's attributes."""

    headers: dict[str, str]
    resource: dict[str, str]
    spans: list[Span]


@dataclass
class Receiver:
    """The exports received so far, in order; ``status`` is what it answers."""

    url: str
    status: int = 200
    exports: list[Export] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[Span]:
        with self.lock:
            return [span for export in self.exports for span in export.spans]

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[Span]:
        """The spans once at least ``count`` have arrived."""
        deadline = time.monotonic() + timeout
        while len(spans := self.spans()) < count:
            assert time.monotonic() < deadline, f"{len(spans)} of {count} spans arrived"
            time.sleep(0.05)
        return spans


def attributes(span: Span) -> dict[str, object]:
    """A span's attributes as plain values."""
    out: dict[str, object] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


@contextmanager
def otlp_receiver(status: int = 200, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1 for the duration of the block; over TLS with ``tls`` (a
    server context), its URL then ``https``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:

            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = {
                    kv.key: kv.value.string_value for kv in resource_spans.resource.attributes
                }
                spans = [span for scope in resource_spans.scope_spans for span in scope.spans]
                with receiver.lock:
                    receiver.exports.append(Export(dict(self.headers.items()), resource, spans))
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(receiver.status)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    host, port = server.server_address[:2]
    scheme = "https" if tls is not None else "http"
    receiver = Receiver(f"{scheme}://{host!s}:{port}/v1/traces", status)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
