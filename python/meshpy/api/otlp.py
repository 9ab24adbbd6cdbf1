"""OTLP/HTTP trace exports, decoded and checked: bodies in, span records and answers out.

Pure functions, no I/O. A body is an ``ExportTraceServiceRequest`` in binary protobuf
(``application/x-protobuf``) or in OTLP JSON (``application/json``: protobuf's JSON
mapping, except that trace and span IDs are hex, not base64). Answers are encoded as the
request was: ``ExportTraceServiceResponse`` on success, ``google.rpc.Status`` on failure.

::

    MeshpyError
    ├── BadExportError       400: the body does not decode
    └── BodyTooLargeError    413: over the limit (after gunzip too)
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from meshpy.errors import MeshpyError
from meshpy.registry.models import SPAN_KINDS, SPAN_STATUSES
from meshpy.registry.repository import NewSpan

__all__ = [
    "JSON",
    "PROTOBUF",
    "BadExportError",
    "BodyTooLargeError",
    "Decoded",
    "Encoding",
    "decode",
    "encoding_of",
    "error_body",
    "gunzip",
    "parse_request",
    "success_body",
]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
Encoding = Literal["application/x-protobuf", "application/json"]

MAX_NAME = 512
"""Span names longer than this are cut (the column's width)."""
MAX_SERVICE = 255
UNKNOWN_SERVICE = "unknown_service"
"""The service of spans whose resource has no ``service.name`` (OpenTelemetry's default)."""
_MAX_NANOS = 2**63 - 1
"""A BIGINT's largest value: later times do not fit in the store."""
_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


class BadExportError(MeshpyError):
    """The body is not an ExportTraceServiceRequest in the encoding it claims."""


class BodyTooLargeError(MeshpyError):
    """The body is over the size limit."""


def encoding_of(content_type: str | None) -> Encoding | None:
    """The encoding a Content-Type names (parameters such as charset ignored), or None."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == PROTOBUF:
        return PROTOBUF
    if media_type == JSON:
        return JSON
    return None


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body without ever holding more than ``limit`` bytes of it."""
    decompressor = zlib.decompressobj(wbits=31)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        msg = f"the gzip body is corrupt: {exc}"
        raise BadExportError(msg) from None
    if len(out) > limit:
        msg = f"the body is over {limit} bytes once decompressed"
        raise BodyTooLargeError(msg)
    if not decompressor.eof:
        msg = "the gzip body is truncated"
        raise BadExportError(msg)
    return out


def parse_request(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """Decode an export request; raise BadExportError with what is wrong."""
    request = ExportTraceServiceRequest()
    if encoding == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            msg = f"the body is not a protobuf ExportTraceServiceRequest: {exc}"
            raise BadExportError(msg) from None
        return request
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        msg = f"the body is not JSON: {exc}"
        raise BadExportError(msg) from None
    if not isinstance(document, dict):
        msg = "the body is not a JSON object"
        raise BadExportError(msg)
    _hex_ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        msg = f"the body is not an OTLP JSON ExportTraceServiceRequest: {exc}"
        raise BadExportError(msg) from None
    return request


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP JSON writes trace and span IDs in hex; protobuf's JSON mapping reads base64."""
    for where, holder, key in _id_fields(document):
        value = holder.get(key)
        if not isinstance(value, str):
            continue  # absent, or the wrong type: ParseDict says what is wrong
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            msg = f"{where}.{key}: {value[:40]!r} is not hex"
            raise BadExportError(msg) from None
        holder[key] = base64.b64encode(raw).decode("ascii")


def _id_fields(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    for r, resource_spans in _objects(document.get("resourceSpans")):
        for s, scope_spans in _objects(resource_spans.get("scopeSpans")):
            for i, span in _objects(scope_spans.get("spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                yield from ((where, span, key) for key in ("traceId", "spanId", "parentSpanId"))
                for j, link in _objects(span.get("links")):
                    yield from ((f"{where}.links[{j}]", link, k) for k in ("traceId", "spanId"))


def _objects(value: object) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(value, list):
        yield from ((i, item) for i, item in enumerate(value) if isinstance(item, dict))


@dataclass(frozen=True)
class Decoded:
    """The spans of an export worth storing, and what was refused."""

    spans: list[NewSpan] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)
    """Why spans were refused, each reason once."""


def decode(request: ExportTraceServiceRequest, *, only_service: str | None = None) -> Decoded:
    """The request's spans as records. A span that is not valid (IDs, times) is refused;
    with ``only_service`` so is every span of a resource whose ``service.name`` differs
    (a join token exports its own service's spans only)."""
    spans: list[NewSpan] = []
    rejected = 0
    reasons: list[str] = []

    def refuse(count: int, reason: str) -> None:
        nonlocal rejected
        rejected += count
        if reason not in reasons:
            reasons.append(reason)

    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get("service.name")
        service_name = service[:MAX_SERVICE] if isinstance(service, str) else UNKNOWN_SERVICE
        count = sum(len(scope.spans) for scope in resource_spans.scope_spans)
        if only_service is not None and service_name != only_service:
            refuse(count, f"this token exports spans of {only_service!r}, not {service_name!r}")
            continue
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                problem = _problem(span)
                if problem is not None:
                    refuse(1, problem)
                    continue
                spans.append(_record(span, service_name, resource))
    return Decoded(spans, rejected, reasons)


def _problem(span: Span) -> str | None:
    """Why a span cannot be stored, or None."""
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "a span's trace_id is not 16 bytes, or is all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "a span's span_id is not 8 bytes, or is all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "a span's parent_span_id is not 8 bytes"
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if not 0 < start <= end <= _MAX_NANOS:
        return "a span's start and end times are missing, reversed or out of range"
    return None


def _record(span: Span, service_name: str, resource: dict[str, Any]) -> NewSpan:
    attributes = _attributes(span.attributes)
    http_status = attributes.get("http.response.status_code")
    parent = span.parent_span_id.hex() if any(span.parent_span_id) else None
    kind = SPAN_KINDS[span.kind] if 0 <= span.kind < len(SPAN_KINDS) else SPAN_KINDS[0]
    code = span.status.code
    status = SPAN_STATUSES[code] if 0 <= code < len(SPAN_STATUSES) else SPAN_STATUSES[0]
    return NewSpan(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=parent,
        name=_text(span.name)[:MAX_NAME],
        kind=kind,
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_code=status,
        status_message=_text(span.status.message) or None,
        service_name=_text(service_name),
        http_status_code=http_status if _is_status(http_status) else None,
        attributes=attributes,
        resource_attributes=resource,
    )


def _is_status(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 999


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key-values as a JSON object (a repeated key: the last one wins)."""
    return {_text(pair.key): _value(pair.value) for pair in pairs}


def _value(value: AnyValue) -> Any:
    """An OTLP AnyValue as JSON that both SQLite and PostgreSQL's JSONB store."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    scalar = None if kind is None else getattr(value, kind)
    if isinstance(scalar, str):
        return _text(scalar)
    if isinstance(scalar, bytes):
        return base64.b64encode(scalar).decode("ascii")
    if isinstance(scalar, float) and not math.isfinite(scalar):
        return str(scalar)  # JSON has no NaN or infinity
    return scalar


def _text(value: str) -> str:
    """``value`` as PostgreSQL takes it: no NUL, no lone surrogate (from JSON escapes)."""
    cleaned = value.replace("\x00", "\ufffd")
    return cleaned.encode("utf-8", "replace").decode("utf-8")


def _encode(message: Message, encoding: Encoding) -> bytes:
    if encoding == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def success_body(decoded: Decoded, encoding: Encoding) -> bytes:
    """The ExportTraceServiceResponse: empty, or a partial success naming what was refused."""
    response = ExportTraceServiceResponse()
    if decoded.rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(
                rejected_spans=decoded.rejected, error_message="; ".join(decoded.reasons)
            )
        )
    return _encode(response, encoding)


def error_body(status: int, message: str, encoding: Encoding) -> bytes:
    """A google.rpc.Status, the body OTLP/HTTP gives every 4xx and 5xx answer."""
    code = _GRPC_CODES.get(status, code_pb2.UNKNOWN)
    return _encode(status_pb2.Status(code=code, message=message), encoding)
