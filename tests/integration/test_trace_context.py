"""Trace context through a real `meshpy proxy run`: continued, started, sampled, and
left alone without a `tracing` section."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from tests.integration.backends import HttpBackend
from tests.integration.conftest import StartProxy
from tests.integration.proxyproc import proxy_config

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])")


def traced(sample_percent: float) -> dict[str, object]:
    return {"sample_percent": sample_percent}


def forwarded(
    http_backend: Callable[[str], HttpBackend],
    start_proxy: StartProxy,
    sent: dict[str, str],
    **top: object,
) -> dict[str, list[str]]:
    """The trace headers the backend got for one request sent with `sent`."""
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address], **top))
    answer = httpx.get(proxy.url("/traced"), headers=sent, timeout=5)
    assert answer.status_code == 200, answer.text
    (seen,) = backend.seen
    names = ("traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled")
    return {name: seen.header(name) for name in names}


def test_a_trace_is_continued_with_this_hops_span(http_backend, start_proxy) -> None:
    sent = {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=a"}
    got = forwarded(http_backend, start_proxy, sent, tracing=traced(0))
    (traceparent,) = got["traceparent"]
    match = TRACEPARENT.fullmatch(traceparent)
    assert match, traceparent
    trace_id, span_id, flags = match.groups()
    assert (trace_id, flags) == (TRACE, "01"), "the caller's trace and decision are kept"
    assert span_id not in (SPAN, "0" * 16)
    assert got["tracestate"] == ["vendor=a"]


@pytest.mark.parametrize(("percent", "flags"), [(100, "01"), (0, "00")])
def test_a_request_without_a_trace_starts_one(http_backend, start_proxy, percent, flags) -> None:
    got = forwarded(http_backend, start_proxy, {}, tracing=traced(percent))
    (traceparent,) = got["traceparent"]
    match = TRACEPARENT.fullmatch(traceparent)
    assert match, traceparent
    assert match.group(1) != "0" * 32
    assert match.group(3) == flags


@pytest.mark.parametrize(
    "sent",
    [
        {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01", "tracestate": "vendor=a"},
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"traceparent": "garbage", "b3": "also-garbage"},
        {"x-b3-traceid": TRACE},
    ],
)
def test_malformed_trace_headers_start_a_new_trace(http_backend, start_proxy, sent) -> None:
    got = forwarded(http_backend, start_proxy, sent, tracing=traced(100))
    (traceparent,) = got["traceparent"]
    match = TRACEPARENT.fullmatch(traceparent)
    assert match, traceparent
    assert match.group(1) != TRACE
    assert (got["tracestate"], got["b3"], got["x-b3-traceid"]) == ([], [], [])


def test_b3_is_continued_in_the_form_it_came_in(http_backend, start_proxy) -> None:
    sent = {"b3": f"{TRACE[16:]}-{SPAN}-1"}
    got = forwarded(http_backend, start_proxy, sent, tracing=traced(0))
    (b3,) = got["b3"]
    trace_id, span_id, sampled = b3.split("-")
    assert (trace_id, sampled) == (TRACE[16:], "1")
    assert span_id != SPAN
    assert got["traceparent"] == [f"00-{'0' * 16}{TRACE[16:]}-{span_id}-01"]


def test_without_a_tracing_section_trace_headers_pass_untouched(http_backend, start_proxy) -> None:
    sent = {"traceparent": f"00-{TRACE}-{SPAN}-01", "b3": "garbage"}
    got = forwarded(http_backend, start_proxy, sent)
    assert got["traceparent"] == [sent["traceparent"]]
    assert got["b3"] == ["garbage"]
    assert forwarded(http_backend, start_proxy, {})["traceparent"] == []
