"""Decoding OTLP trace exports: encodings, gzip, bad bodies, span checks, answers."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from meshpy.api import otlp
from tests.otlpdata import SpanSpec, checkout, export, otlp_json

T0 = 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-protobuf", otlp.PROTOBUF),
        ("Application/X-Protobuf", otlp.PROTOBUF),
        ("application/json", otlp.JSON),
        ("application/json; charset=utf-8", otlp.JSON),
        ("text/plain", None),
        ("application/grpc", None),
        ("", None),
        (None, None),
    ],
)
def test_encoding_of(content_type: str | None, expected: str | None) -> None:
    assert otlp.encoding_of(content_type) == expected


def test_gunzip_within_and_over_the_limit() -> None:
    body = b"x" * 1000
    assert otlp.gunzip(gzip.compress(body), 1000) == body
    with pytest.raises(otlp.BodyTooLargeError, match="over 999 bytes once decompressed"):
        otlp.gunzip(gzip.compress(body), 999)
    with pytest.raises(otlp.BadExportError, match="corrupt"):
        otlp.gunzip(b"not gzip at all", 1000)
    with pytest.raises(otlp.BadExportError, match="truncated"):
        otlp.gunzip(gzip.compress(body)[:20], 1000)


def test_protobuf_and_json_decode_to_the_same_request() -> None:
    request = checkout(T0)
    assert otlp.parse_request(request.SerializeToString(), otlp.PROTOBUF) == request
    assert otlp.parse_request(otlp_json(request), otlp.JSON) == request


def test_json_ignores_unknown_fields_and_takes_lowercase_hex() -> None:
    document = json.loads(otlp_json(checkout(T0)))
    document["futureField"] = {"x": 1}
    first = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    first["traceId"] = first["traceId"].lower()
    first["newSpanField"] = 7
    request = otlp.parse_request(json.dumps(document).encode(), otlp.JSON)
    assert request == checkout(T0)


def _json_with(**span_fields: Any) -> bytes:
    document = json.loads(otlp_json(export(T0, {"cart": [SpanSpec(1, 1, "GET /")]})))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0].update(span_fields)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (b"\xff\xff\xff\xff", otlp.PROTOBUF, "not a protobuf ExportTraceServiceRequest"),
        (b"\x0a\x05\x01", otlp.PROTOBUF, "not a protobuf ExportTraceServiceRequest"),
        (b"{", otlp.JSON, "not JSON"),
        (b"\xff", otlp.JSON, "not JSON"),
        (b"[1, 2]", otlp.JSON, "not a JSON object"),
        (b'{"resourceSpans": 5}', otlp.JSON, "not an OTLP JSON"),
        (_json_with(traceId="zz" * 16), otlp.JSON, r"spans\[0\]\.traceId: .* is not hex"),
        (_json_with(spanId="abc"), otlp.JSON, r"spans\[0\]\.spanId: 'abc' is not hex"),
        (_json_with(kind={"a": 1}), otlp.JSON, "not an OTLP JSON"),
        (_json_with(startTimeUnixNano="soon"), otlp.JSON, "not an OTLP JSON"),
        (b"[" * 100_000 + b"]" * 100_000, otlp.JSON, "not"),
    ],
)
def test_bodies_that_do_not_decode(body: bytes, encoding: otlp.Encoding, message: str) -> None:
    with pytest.raises(otlp.BadExportError, match=message):
        otlp.parse_request(body, encoding)


def test_decode_takes_service_ids_kinds_statuses_and_attributes() -> None:
    decoded = otlp.decode(checkout(T0))
    assert (decoded.rejected, decoded.reasons) == (0, [])
    root, call, charge = decoded.spans
    assert (root.trace_id, root.span_id, root.parent_span_id) == (
        "0" * 31 + "1",
        "0" * 15 + "1",
        None,
    )
    assert (call.parent_span_id, call.kind, call.status_code) == ("0" * 15 + "1", "client", "error")
    assert (root.service_name, charge.service_name) == ("cart", "payment")
    assert (root.start_ns, root.end_ns) == (T0, T0 + 120_000_000)
    assert root.http_status_code == 503
    assert call.attributes["meshpy.mtls"] is True
    assert call.attributes["meshpy.retry.attempt"] == 1
    assert charge.resource_attributes == {"service.name": "payment"}


def test_attribute_values_become_json() -> None:
    attrs = {
        "s": "a\x00b",
        "i": -3,
        "f": 1.5,
        "nan": float("nan"),
        "b": False,
        "bytes": b"\x01\x02",
        "list": [1, "two"],
        "map": {"k": {"deep": True}},
    }
    (decoded,) = otlp.decode(export(T0, {"cart": [SpanSpec(1, 1, "x", attrs=attrs)]})).spans
    assert decoded.attributes == {
        "s": "a\ufffdb",
        "i": -3,
        "f": 1.5,
        "nan": "nan",
        "b": False,
        "bytes": "AQI=",
        "list": [1, "two"],
        "map": {"k": {"deep": True}},
    }
    assert decoded.http_status_code is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"trace_id": b""}, "trace_id is not 16 bytes"),
        ({"trace_id": b"\x00" * 16}, "trace_id is not 16 bytes, or is all zero"),
        ({"span_id": b"\x01" * 4}, "span_id is not 8 bytes"),
        ({"parent_span_id": b"\x01" * 3}, "parent_span_id is not 8 bytes"),
        ({"start_time_unix_nano": 0}, "times are missing"),
        ({"end_time_unix_nano": T0 - 1}, "reversed"),
        ({"start_time_unix_nano": 2**63, "end_time_unix_nano": 2**64 - 1}, "out of range"),
    ],
)
def test_invalid_spans_are_refused_alone(change: dict[str, Any], reason: str) -> None:
    request = export(T0, {"cart": [SpanSpec(1, 1, "bad"), SpanSpec(1, 2, "good", parent=1)]})
    bad = request.resource_spans[0].scope_spans[0].spans[0]
    for key, new in change.items():
        setattr(bad, key, new)
    decoded = otlp.decode(request)
    assert [s.name for s in decoded.spans] == ["good"]
    assert decoded.rejected == 1
    assert reason in decoded.reasons[0]


def test_a_join_token_exports_its_own_service_only() -> None:
    decoded = otlp.decode(checkout(T0), only_service="cart")
    assert [s.service_name for s in decoded.spans] == ["cart", "cart"]
    assert decoded.rejected == 1
    assert decoded.reasons == ["this token exports spans of 'cart', not 'payment'"]
    nameless = export(T0, {"cart": [SpanSpec(1, 1, "x")]})
    del nameless.resource_spans[0].resource.attributes[:]
    (span,) = otlp.decode(nameless).spans
    assert span.service_name == "unknown_service"


def test_answers_in_the_request_encoding() -> None:
    assert otlp.success_body(otlp.Decoded(), otlp.PROTOBUF) == b""
    assert otlp.success_body(otlp.Decoded(), otlp.JSON) == b"{}"
    partial = otlp.Decoded(rejected=2, reasons=["one", "two"])
    response = ExportTraceServiceResponse.FromString(otlp.success_body(partial, otlp.PROTOBUF))
    assert response.partial_success.rejected_spans == 2
    assert response.partial_success.error_message == "one; two"
    assert json.loads(otlp.success_body(partial, otlp.JSON)) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "one; two"}
    }
    status = status_pb2.Status.FromString(otlp.error_body(400, "bad body", otlp.PROTOBUF))
    assert (status.code, status.message) == (3, "bad body")
    assert json.loads(otlp.error_body(429, "slow down", otlp.JSON)) == {
        "code": 8,
        "message": "slow down",
    }


def test_an_empty_export_is_fine() -> None:
    assert otlp.decode(otlp.parse_request(b"", otlp.PROTOBUF)) == otlp.Decoded()
    assert otlp.decode(otlp.parse_request(b"{}", otlp.JSON)) == otlp.Decoded()
    assert json_format.MessageToDict(ExportTraceServiceRequest()) == {}
