"""A gRPC app for `meshpy run --protocol grpc` tests: ``python -m tests.integration.grpcapp``.

It serves ``test.Echo`` on 127.0.0.1:$PORT over h2c, with raw bytes for messages (no
generated code): ``Say`` answers ``<version>:<request>`` and sets the trailer
``x-test-version``; ``Count`` streams ``request`` (a number) messages; ``Fail`` ends
with NOT_FOUND and a detail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent import futures

import grpc

VERSION = os.environ.get("MESHPY_VERSION", "none")


def _say(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.set_trailing_metadata((("x-test-version", VERSION),))
    return f"{VERSION}:".encode() + request


def _count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode()


def _fail(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.NOT_FOUND, f"no {request.decode()} here")


def main() -> None:
    """Serve until killed."""
    handlers = {
        "Say": grpc.unary_unary_rpc_method_handler(_say),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
        "Fail": grpc.unary_unary_rpc_method_handler(_fail),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    server.add_insecure_port(f"127.0.0.1:{os.environ['PORT']}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
