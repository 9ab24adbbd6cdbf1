"""gRPC through HTTPRoutes and real sidecars: HTTP/2 end to end over mTLS, routed by
path and header like any HTTP request, with trailers, streams and error statuses kept."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.integration.conftest import FAST_LEASES, StartServer
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import spawn_sidecar, wait_sidecar_ready

GRPC_APP = (sys.executable, "-m", "tests.integration.grpcapp")

ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "echo-canary"},
    "spec": {
        "parentRefs": [{"group": "", "kind": "Service", "name": "echo"}],
        "rules": [
            {
                "matches": [
                    {
                        "path": {"type": "Exact", "value": "/test.Echo/Say"},
                        "headers": [{"name": "x-canary", "value": "yes"}],
                    }
                ],
                "backendRefs": [{"name": "echo-v2"}],
            },
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/test.Echo/"}}],
                "backendRefs": [{"name": "echo-v1"}],
            },
        ],
    },
}


@pytest.fixture
def mesh(tmp_path: Path, start_server: StartServer) -> Iterator[tuple[ServerProcess, ProxyProcess]]:
    server = start_server(env=FAST_LEASES)
    started = [
        spawn_sidecar(
            tmp_path, server, "echo", "--protocol", "grpc", "--version", v, app=GRPC_APP, name=v
        )
        for v in ("v1", "v2")
    ]
    started.append(spawn_sidecar(tmp_path, server, "cart"))
    try:
        for sidecar in started:
            wait_sidecar_ready(sidecar)
        yield server, started[-1]
    finally:
        for sidecar in started:
            sidecar.stop()


def _channel(cart: ProxyProcess) -> grpc.Channel:
    # The app talks h2c to its sidecar's outbound listener, naming the service as authority.
    options = [("grpc.default_authority", "echo"), ("grpc.enable_http_proxy", 0)]
    return grpc.insecure_channel(cart.addresses["outbound"], options=options)


def _say(channel: grpc.Channel, canary: bool) -> tuple[bytes, dict[str, str]]:
    say = channel.unary_unary("/test.Echo/Say")
    metadata = (("x-canary", "yes"),) if canary else ()
    answer, call = say.with_call(b"hello", metadata=metadata, timeout=5)
    return answer, dict(call.trailing_metadata() or ())


def test_grpc_calls_are_routed_and_keep_trailers_streams_and_statuses(
    mesh: tuple[ServerProcess, ProxyProcess],
) -> None:
    server, cart = mesh
    with _channel(cart) as channel:
        deadline = time.monotonic() + 30
        while True:  # until both versions are endpoints of the mesh
            try:
                seen = {_say(channel, canary=False)[0] for _ in range(20)}
            except grpc.RpcError:
                seen = set()
            if seen == {b"v1:hello", b"v2:hello"}:
                break
            assert time.monotonic() < deadline, f"only saw {seen}"
            time.sleep(0.2)

        answer = server.client().put(
            "/api/v1/namespaces/default/httproutes/echo-canary", json=ROUTE
        )
        assert answer.status_code in (200, 201), answer.text
        deadline = time.monotonic() + 30
        while (
            _say(channel, canary=False)[0] != b"v1:hello"
            or _say(channel, canary=True)[0] != b"v2:hello"
        ):
            assert time.monotonic() < deadline, "the route never applied"
            time.sleep(0.1)

        for _ in range(20):
            assert _say(channel, canary=True) == (b"v2:hello", {"x-test-version": "v2"})
            assert _say(channel, canary=False) == (b"v1:hello", {"x-test-version": "v1"})

        count = channel.unary_stream("/test.Echo/Count")
        assert list(count(b"50", timeout=5)) == [str(i).encode() for i in range(50)]

        fail = channel.unary_unary("/test.Echo/Fail")
        with pytest.raises(grpc.RpcError) as refused:
            fail(b"thing", timeout=5)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert refused.value.details() == "no thing here"

        # No rule of the route matches another gRPC service: the mesh answers 404,
        # which gRPC clients see as UNIMPLEMENTED.
        other = channel.unary_unary("/other.Service/Call")
        with pytest.raises(grpc.RpcError) as unrouted:
            other(b"", timeout=5)
        assert unrouted.value.code() == grpc.StatusCode.UNIMPLEMENTED
