"""Spans from a real `meshpy proxy run`, exported over OTLP/HTTP and decoded with the
`opentelemetry-proto` package: ids, kinds, timing, attributes, sampling and failures."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.integration.backends import HttpBackend, closed_port
from tests.integration.conftest import StartProxy
from tests.integration.otlpreceiver import attributes, otlp_receiver
from tests.integration.proxyproc import ProxyProcess, proxy_config

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def traced_proxy(
    start_proxy: StartProxy,
    endpoints: list[str],
    receiver_url: str,
    *,
    percent: float,
    direction: str = "outbound",
) -> ProxyProcess:
    tracing = {
        "sample_percent": percent,
        "service": "cart",
        "resource": {"service.version": "v2"},
        "export": [{"endpoint": receiver_url, "headers": {"authorization": "Bearer t"}}],
    }
    config = proxy_config(endpoints, listener={"direction": direction}, tracing=tracing)
    return start_proxy(config)


def metric(proxy: ProxyProcess, name: str) -> float:
    text = httpx.get(proxy.url("/metrics", listener="admin"), timeout=5).text
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


@pytest.mark.parametrize(("direction", "kind"), [("outbound", Span.SPAN_KIND_CLIENT),
                                                  ("inbound", Span.SPAN_KIND_SERVER)])  # fmt: skip
def test_a_sampled_request_becomes_a_span_of_its_trace(
    http_backend: Callable[[str], HttpBackend], start_proxy: StartProxy, direction: str, kind: int
) -> None:
    backend = http_backend("b1")
    with otlp_receiver() as receiver:
        proxy = traced_proxy(
            start_proxy, [backend.address], receiver.url, percent=0, direction=direction
        )
        before = time.time_ns()
        answer = httpx.get(
            proxy.url("/slow?s=0.2"),
            headers={"traceparent": f"00-{TRACE}-{SPAN}-01", "x-request-id": "r-1"},
            timeout=5,
        )
        after = time.time_ns()
        assert answer.status_code == 200
        (span,) = receiver.wait_for_spans(1)
        (export,) = receiver.exports
    assert export.headers["authorization"] == "Bearer t"
    assert export.headers["content-type"] == "application/x-protobuf"
    assert export.resource == {"service.name": "cart", "service.version": "v2"}
    forwarded = backend.seen[0].header("traceparent")[0]
    assert span.trace_id.hex() == TRACE
    assert span.parent_span_id.hex() == SPAN
    assert forwarded == f"00-{TRACE}-{span.span_id.hex()}-01", "the app sees this span"
    assert span.kind == kind
    assert span.name == "GET 127.0.0.1"
    assert before <= span.start_time_unix_nano
    assert span.end_time_unix_nano <= after
    assert span.end_time_unix_nano - span.start_time_unix_nano >= 200_000_000
    assert span.status.code == Status.STATUS_CODE_UNSET
    attrs = attributes(span)
    assert attrs["http.request.method"] == "GET"
    assert attrs["url.path"] == "/slow"
    assert attrs["http.response.status_code"] == 200
    assert attrs["network.peer.address"] == "127.0.0.1"
    assert attrs["meshpy.request_id"] == "r-1"
    # A client span names the cluster called; a server span, the proxy's own service.
    assert attrs["meshpy.destination.service"] == ("backend" if direction == "outbound" else "cart")
    assert attrs["meshpy.endpoint"] == backend.address
    assert attrs["meshpy.mtls"] is False
    assert metric(proxy, "meshpy_trace_spans_exported_total") == 1


def test_failures_are_recorded_even_when_not_sampled(
    http_backend: Callable[[str], HttpBackend], start_proxy: StartProxy
) -> None:
    backend = http_backend("b1")
    with otlp_receiver() as receiver:
        ok = traced_proxy(start_proxy, [backend.address], receiver.url, percent=0)
        down = traced_proxy(start_proxy, [closed_port()], receiver.url, percent=0)
        assert httpx.get(ok.url("/fine"), timeout=5).status_code == 200
        failed = httpx.get(down.url("/broken"), timeout=5)
        assert failed.status_code == 502
        (span,) = receiver.wait_for_spans(1)
        time.sleep(1.5)  # a second batch window: the successful request never comes
        assert len(receiver.spans()) == 1
    attrs = attributes(span)
    assert span.status.code == Status.STATUS_CODE_ERROR
    assert attrs["url.path"] == "/broken"
    assert attrs["http.response.status_code"] == 502
    assert attrs["error.type"] == attrs["meshpy.error"] == failed.headers["x-meshpy-error"]
    assert span.parent_span_id == b"", "a trace started here"


def test_a_receiver_that_refuses_costs_requests_nothing(
    http_backend: Callable[[str], HttpBackend], start_proxy: StartProxy
) -> None:
    backend = http_backend("b1")
    with otlp_receiver(status=503) as receiver:
        proxy = traced_proxy(start_proxy, [backend.address], receiver.url, percent=100)
        with httpx.Client(timeout=5) as client:
            statuses = {client.get(proxy.url(f"/r{i}")).status_code for i in range(20)}
        assert statuses == {200}
        receiver.wait_for_spans(20)
        deadline = time.monotonic() + 10
        while metric(proxy, "meshpy_trace_spans_failed_total") < 20:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert metric(proxy, "meshpy_trace_spans_exported_total") == 0


def test_an_unreachable_receiver_costs_requests_nothing(
    http_backend: Callable[[str], HttpBackend], start_proxy: StartProxy
) -> None:
    backend = http_backend("b1")
    proxy = traced_proxy(
        start_proxy, [backend.address], f"http://{closed_port()}/v1/traces", percent=100
    )
    with httpx.Client(timeout=5) as client:
        assert {client.get(proxy.url(f"/r{i}")).status_code for i in range(20)} == {200}
    deadline = time.monotonic() + 10
    while metric(proxy, "meshpy_trace_spans_failed_total") < 20:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_each_retry_is_a_span_of_its_own(
    http_backend: Callable[[str], HttpBackend], start_proxy: StartProxy
) -> None:
    backend = http_backend("b1")
    dead = closed_port()
    rule = {"backends": [{"cluster": "backend"}], "retry": {"attempts": 1}}
    listener = {
        "direction": "outbound",
        "cluster": None,
        "routes": [{"name": "any", "hosts": ["*"], "rules": [rule]}],
    }
    with otlp_receiver() as receiver:
        tracing = {"sample_percent": 100, "export": [{"endpoint": receiver.url}]}
        config = proxy_config([dead, backend.address], listener=listener, tracing=tracing)
        proxy = start_proxy(config)
        # Round robin over [dead, live]: at least one request tries the dead one first.
        with httpx.Client(timeout=5) as client:
            for i in range(2):
                headers = {"traceparent": f"00-{TRACE[:-1]}{i}-{SPAN}-01"}
                assert client.get(proxy.url(f"/r{i}"), headers=headers).status_code == 200
        spans = receiver.wait_for_spans(3)
    by_trace: dict[bytes, list[Span]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    retried = [group for group in by_trace.values() if len(group) == 2]
    assert retried, [len(group) for group in by_trace.values()]
    sent = [seen.header("traceparent")[0] for seen in backend.seen]
    for group in retried:
        first, second = sorted(group, key=lambda span: span.start_time_unix_nano)
        assert attributes(first)["meshpy.endpoint"] == dead
        assert first.status.code == Status.STATUS_CODE_ERROR
        assert "meshpy.retry.attempt" not in attributes(first)
        assert attributes(second)["meshpy.endpoint"] == backend.address
        assert attributes(second)["meshpy.retry.attempt"] == 1
        assert attributes(second)["http.response.status_code"] == 200
        assert first.span_id != second.span_id
        assert first.parent_span_id.hex() == second.parent_span_id.hex() == SPAN
        expected = f"00-{first.trace_id.hex()}-{second.span_id.hex()}-01"
        assert expected in sent, "the app saw the retry's span"


def test_a_span_lasts_until_the_last_byte_of_the_response(start_proxy: StartProxy) -> None:
    # A backend that sends its response head at once and its body 0.4 s later.
    listener = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listener.getsockname()[1]}"

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
            time.sleep(0.4)
            conn.sendall(b"done")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with otlp_receiver() as receiver:
        proxy = traced_proxy(start_proxy, [address], receiver.url, percent=100)
        with httpx.stream("GET", proxy.url("/streamed"), timeout=5) as answer:
            head_at = time.monotonic()
            assert answer.read() == b"done"
            body_at = time.monotonic()
        (span,) = receiver.wait_for_spans(1)
    listener.close()
    assert body_at - head_at >= 0.35, "the body came after the head"
    assert span.end_time_unix_nano - span.start_time_unix_nano >= 350_000_000
