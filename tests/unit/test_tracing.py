"""``meshpy.tracing.propagation_headers``: the trace headers an app passes on, from any
shape of headers."""

from __future__ import annotations

from email.message import Message

import pytest

from meshpy.tracing import propagation_headers

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def message(pairs: list[tuple[str, str]]) -> Message:
    msg = Message()
    for name, value in pairs:
        msg[name] = value
    return msg


PAIRS = [
    ("Traceparent", TP),
    ("tracestate", "a=1"),
    ("X-B3-Sampled", "1"),
    ("X-Request-Id", "r-1"),
    ("Content-Type", "text/plain"),
    ("Authorization", "Bearer secret"),
]
WANTED = {"traceparent": TP, "tracestate": "a=1", "x-b3-sampled": "1", "x-request-id": "r-1"}


@pytest.mark.parametrize(
    "incoming", [dict(PAIRS), PAIRS, message(PAIRS)], ids=["dict", "pairs", "http.server"]
)
def test_only_the_trace_headers_are_passed_on(incoming: object) -> None:
    assert propagation_headers(incoming) == WANTED  # type: ignore[arg-type]


def test_no_trace_headers_pass_nothing() -> None:
    assert propagation_headers({"accept": "*/*"}) == {}
