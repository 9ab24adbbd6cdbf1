"""The sidecar's inbound summary: read from the core, sent with each lease renewal."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from meshpy import _core
from meshpy.sidecar.controlplane import ControlPlaneError, Response
from meshpy.sidecar.edges import edge_reports
from meshpy.sidecar.inbound import busiest, duration_buckets, inbound_stats
from meshpy.sidecar.registration import InstanceSpec, Registrar

METRICS = """\
# TYPE meshpy_requests counter
meshpy_requests_total{listener="inbound",status_class="2xx"} 7
http_server_request_duration_seconds_count{direction="inbound",source_service="a"} 6
http_server_request_duration_seconds_bucket{direction="inbound",source_service="a",le="0.005"} 4
http_server_request_duration_seconds_bucket{direction="inbound",source_service="a",le="0.01"} 5
http_server_request_duration_seconds_bucket{direction="inbound",source_service="a",le="+Inf"} 6
http_server_request_duration_seconds_bucket{direction="inbound",source_service="b",le="0.01"} 3
http_server_request_duration_seconds_bucket{direction="inbound",source_service="b",le="+Inf"} 3
http_server_request_duration_seconds_bucket{le="1.0",direction="inbound",source_service="b"} 3
http_client_request_duration_seconds_bucket{direction="outbound",le="0.005"} 100
"""


def test_duration_buckets_add_up_the_inbound_edges() -> None:
    assert duration_buckets(edge_reports(METRICS)) == {"0.005": 4, "0.01": 8, "+Inf": 9, "1.0": 3}
    assert duration_buckets(edge_reports("")) == {}


_EDGE = (
    'source_namespace="default",source_service="cart",source_version="unknown",'
    'source_identity="spiffe://mesh.local/ns/default/sa/cart",destination_namespace="default",'
    'destination_service="payment",destination_version="v2",mtls="true"'
)
_OUT = (
    'source_namespace="default",source_service="payment",source_version="v2",'
    'source_identity="",destination_namespace="default",destination_service="bank",'
    'destination_version="unknown",mtls="false"'
)


def _sample(family: str, edge: str, method: str, code: int, value: float, *, le: str = "") -> str:
    """One line of the core's per-edge histogram: ``_bucket`` with ``le``, else ``_count``."""
    direction = "inbound" if family.startswith("http_server") else "outbound"
    labels = f'direction="{direction}",{edge},http_request_method="{method}",'
    labels += f'http_response_status_code="{code}"'
    if le:
        return f'{family}_bucket{{le="{le}",{labels}}} {value}'
    return f"{family}_count{{{labels}}} {value}"


SERVER = "http_server_request_duration_seconds"
CLIENT = "http_client_request_duration_seconds"
EDGE_METRICS = "\n".join(
    [
        f"# TYPE {SERVER} histogram",
        _sample(SERVER, _EDGE, "GET", 200, 5),
        _sample(SERVER, _EDGE, "GET", 200, 4, le="0.005"),
        _sample(SERVER, _EDGE, "GET", 200, 5, le="+Inf"),
        _sample(SERVER, _EDGE, "POST", 503, 2),
        _sample(SERVER, _EDGE, "POST", 503, 0, le="0.005"),
        _sample(SERVER, _EDGE, "POST", 503, 2, le="+Inf"),
        "# TYPE meshpy_grpc_responses counter",
        f'meshpy_grpc_responses_total{{direction="inbound",{_EDGE},grpc_status="0"}} 4',
        f'meshpy_grpc_responses_total{{direction="inbound",{_EDGE},grpc_status="5"}} 1',
        f'meshpy_tcp_open_total{{direction="inbound",{_EDGE}}} 2',
        f'meshpy_tcp_close_total{{direction="inbound",{_EDGE}}} 1',
        f'meshpy_tcp_connections_open{{direction="inbound",{_EDGE}}} 1',
        f'meshpy_tcp_read_bytes_total{{direction="inbound",{_EDGE}}} 900',
        f'meshpy_tcp_write_bytes_total{{direction="inbound",{_EDGE}}} 4000',
        f"# TYPE {CLIENT} histogram",
        _sample(CLIENT, _OUT, "GET", 200, 3),
        _sample(CLIENT, _OUT, "GET", 200, 3, le="+Inf"),
        "# EOF",
    ]
)


def test_edge_reports_add_methods_and_codes_up_per_edge() -> None:
    assert edge_reports(EDGE_METRICS) == [
        {
            "direction": "inbound",
            "peer": {"namespace": "default", "service": "cart", "version": "unknown"},
            "identity": "spiffe://mesh.local/ns/default/sa/cart",
            "mtls": True,
            "responses": {"200": 5, "503": 2},
            "duration_buckets": {"0.005": 4, "+Inf": 7},
            "grpc": {"0": 4, "5": 1},
            "tcp": {"opened": 2, "closed": 1, "read_bytes": 900, "write_bytes": 4000},
        },
        {
            "direction": "outbound",
            "peer": {"namespace": "default", "service": "bank", "version": "unknown"},
            "identity": "",
            "mtls": False,
            "responses": {"200": 3},
            "duration_buckets": {"+Inf": 3},
            "grpc": {},
            "tcp": {},
        },
    ]


class _App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status = 500 if self.path == "/fail" else 200
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[_core.Proxy]:
    app = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    core = _core.Proxy(json.dumps({"workers": 1}))
    listener = {"name": "inbound", "address": "127.0.0.1:0", "protocol": "http", "cluster": "a"}
    cluster = {"name": "a", "endpoints": [f"127.0.0.1:{app.server_address[1]}"]}
    core.apply(json.dumps({"listeners": [listener], "clusters": [cluster]}))
    core.start()
    yield core
    core.shutdown(1.0)
    app.shutdown()
    app.server_close()


def test_inbound_stats_read_the_core(proxy: _core.Proxy) -> None:
    address = proxy.addresses()["inbound"]
    for path in ("/", "/"):
        urllib.request.urlopen(f"http://{address}{path}", timeout=5).read()
    with pytest.raises(urllib.error.HTTPError, match="500"):
        urllib.request.urlopen(f"http://{address}/fail", timeout=5)
    stats = inbound_stats(proxy, "2026-12-01T10:00:00.000+00:00")
    assert stats is not None
    assert stats["started_at"] == "2026-12-01T10:00:00.000+00:00"
    assert stats["requests"] == {"1xx": 0, "2xx": 2, "3xx": 0, "4xx": 0, "5xx": 1}
    buckets = stats["duration_buckets"]
    assert buckets["+Inf"] == 3
    [edge] = stats["edges"]
    assert (edge["direction"], edge["responses"]) == ("inbound", {"200": 2, "500": 1})
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative


class _NoInbound:
    def stats(self) -> dict[str, Any]:
        return {"listeners": {"outbound": {"requests": {"2xx": 1}}}}

    def metrics(self) -> str:
        return ""


def test_no_inbound_listener_no_stats() -> None:
    assert inbound_stats(_NoInbound(), "x") is None


class _Client:
    """Answers lease renewals; ``refuse_stats`` plays a control plane that predates them."""

    def __init__(self, refuse_stats: int | None = None) -> None:
        self.refuse_stats = refuse_stats
        self.bodies: list[dict[str, Any]] = []

    def request(self, method: str, path: str, body: Any = None, **_: Any) -> Response:
        self.bodies.append(body)
        if self.refuse_stats and "stats" in body:
            raise ControlPlaneError("unknown field stats", status=self.refuse_stats)
        answer = {"id": "i-1", "renew_every_s": 1.0}
        return Response(200, {}, json.dumps(answer).encode())


def _registrar(client: _Client, stats: Any) -> Registrar:
    spec = InstanceSpec(namespace="default", service="payment", address="127.0.0.1", inbound_port=1)
    return Registrar(
        client,  # type: ignore[arg-type]
        spec,
        health=lambda: "passing",
        instance="i-1",
        stats=stats,
    )


def test_renewals_carry_the_stats() -> None:
    client = _Client()
    registrar = _registrar(client, lambda: {"requests": {"2xx": 1}})
    registrar.renew()
    assert client.bodies == [{"health": "passing", "stats": {"requests": {"2xx": 1}}}]


@pytest.mark.parametrize("status", [400, 422])
def test_an_older_control_plane_gets_renewals_without_stats(status: int) -> None:
    client = _Client(refuse_stats=status)
    registrar = _registrar(client, lambda: {"requests": {"2xx": 1}})
    registrar.renew()
    registrar.renew()
    assert [sorted(b) for b in client.bodies] == [["health", "stats"], ["health"], ["health"]]


def test_a_failing_stats_reader_never_stops_a_renewal() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("core went away")

    client = _Client()
    _registrar(client, broken).renew()
    assert client.bodies == [{"health": "passing"}]


def test_a_report_keeps_the_busiest_edges_past_the_limit() -> None:
    def edge(requests: int, opened: int = 0) -> dict[str, Any]:
        return {"responses": {"200": requests}, "tcp": {"opened": opened}, "n": requests + opened}

    edges = [edge(1), edge(9), edge(0, opened=5), edge(3)]
    assert busiest(edges, limit=4) == edges
    assert [e["n"] for e in busiest(edges, limit=2)] == [9, 5]
