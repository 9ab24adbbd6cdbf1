"""A local OTLP/HTTP trace receiver that counts what arrives and answers 200 at once.

Run as a program (``python benches/harness/otlp_sink.py --port N``), it accepts
``POST <any path>`` with an ``ExportTraceServiceRequest`` (protobuf, optionally
gzip), counts requests, bytes and spans per path (with the ``protobuf`` package),
and answers 200 with an empty body (an empty ``ExportTraceServiceResponse``). A
path under ``/slow/`` is answered after ``--slow-delay`` seconds instead, without
holding up other connections: a collector that is slow. ``GET /stats`` returns the
counts as JSON. It imports nothing from the harness, so that it can run as a
script; the bench reads it with ``sink_stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

SLOW_PREFIX = "/slow/"


def sink_argv(port: int, slow_delay: float) -> list[str]:
    """The command line that runs the sink on `port` with this Python."""
    script = str(Path(__file__).resolve())
    return [sys.executable, script, "--port", str(port), "--slow-delay", f"{slow_delay:g}"]


def sink_stats(port: int) -> dict[str, dict[str, int]]:
    """{path: {"requests", "bytes", "spans", "bad"}} of the sink on `port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5.0) as resp:
        stats: dict[str, dict[str, int]] = json.loads(resp.read())
        return stats


def span_counter() -> Callable[[bytes], int | None]:
    """A function that counts the spans of an ExportTraceServiceRequest, None if its framing
    does not decode. It parses a reduced schema (resource_spans = 1 -> scope_spans = 2 ->
    spans = 2, each span kept as bytes), so it checks the framing down to the spans without
    decoding them: about 30 times cheaper than the full message, and the sink shares the
    load core."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf.message import DecodeError

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="otlp_sink_count.proto", package="sink")
    for name, number, inner in (("Request", 1, ".sink.Resource"), ("Resource", 2, ".sink.Scope")):
        f = proto.message_type.add(name=name).field.add(name="f", number=number)
        f.label, f.type, f.type_name = field.LABEL_REPEATED, field.TYPE_MESSAGE, inner
    f = proto.message_type.add(name="Scope").field.add(name="f", number=2)
    f.label, f.type = field.LABEL_REPEATED, field.TYPE_BYTES
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    request = message_factory.GetMessageClass(pool.FindMessageTypeByName("sink.Request"))

    def count(body: bytes) -> int | None:
        req: Any = request()  # a message class made at run time: no static attributes
        try:
            req.ParseFromString(body)
        except DecodeError:
            return None
        spans: int = sum(len(scope.f) for resource in req.f for scope in resource.f)
        return spans

    return count


class Sink:
    def __init__(self, slow_delay: float) -> None:
        self.slow_delay = slow_delay
        self.count_spans = span_counter()
        self.stats: dict[str, dict[str, int]] = {}

    def record(self, path: str, body: bytes, encoding: str) -> None:
        s = self.stats.setdefault(path, {"requests": 0, "bytes": 0, "spans": 0, "bad": 0})
        s["requests"] += 1
        s["bytes"] += len(body)
        try:
            raw = gzip.decompress(body) if encoding == "gzip" else body
        except OSError:
            raw = b""
        spans = self.count_spans(raw)
        if spans is None:
            s["bad"] += 1
        else:
            s["spans"] += spans

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await read_body(reader, headers)
                if method == "GET" and path == "/stats":
                    payload = json.dumps(self.stats).encode()
                    writer.write(response(200, payload, "application/json"))
                elif method == "POST":
                    self.record(path, body, headers.get("content-encoding", ""))
                    if path.startswith(SLOW_PREFIX):
                        await asyncio.sleep(self.slow_delay)
                    writer.write(response(200, b"", "application/x-protobuf"))
                else:
                    writer.write(response(404, b"", "text/plain"))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    return await reader.readexactly(int(headers.get("content-length", "0")))


def response(status: int, body: bytes, content_type: str) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\n"
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


async def run(port: int, slow_delay: float) -> None:
    sink = Sink(slow_delay)
    server = await asyncio.start_server(sink.serve, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--slow-delay", type=float, default=2.0, help="seconds, for /slow/ paths")
    args = p.parse_args(argv)
    asyncio.run(run(args.port, args.slow_delay))
    return 0


if __name__ == "__main__":
    sys.exit(main())
