"""OTLP export requests for tests, built with the opentelemetry-proto classes, and their
OTLP JSON form (hex IDs, integer enums, camelCase)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

MS = 1_000_000
SERVER = Span.SpanKind.SPAN_KIND_SERVER
CLIENT = Span.SpanKind.SPAN_KIND_CLIENT
ERROR = Status.StatusCode.STATUS_CODE_ERROR
OK = Status.StatusCode.STATUS_CODE_OK


def value(item: Any) -> AnyValue:
    """A Python value as an OTLP AnyValue."""
    any_value = AnyValue()
    if isinstance(item, list):
        any_value.array_value.values.extend(value(v) for v in item)
    elif isinstance(item, dict):
        any_value.kvlist_value.values.extend(attributes(item))
    else:
        scalar = {bool: "bool_value", int: "int_value", float: "double_value", bytes: "bytes_value"}
        setattr(any_value, scalar.get(type(item), "string_value"), item)
    return any_value


def attributes(items: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in items.items()]


@dataclass
class SpanSpec:
    """One span: IDs as ints, times in milliseconds from the trace's start."""

    trace: int
    span: int
    name: str
    parent: int | None = None
    start_ms: float = 0
    duration_ms: float = 10
    kind: int = SERVER
    status: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)


def span(spec: SpanSpec, t0_ns: int) -> Span:
    start = t0_ns + int(spec.start_ms * MS)
    return Span(
        trace_id=spec.trace.to_bytes(16, "big"),
        span_id=spec.span.to_bytes(8, "big"),
        parent_span_id=b"" if spec.parent is None else spec.parent.to_bytes(8, "big"),
        name=spec.name,
        kind=spec.kind,  # type: ignore[arg-type]
        start_time_unix_nano=start,
        end_time_unix_nano=start + int(spec.duration_ms * MS),
        status=Status(code=spec.status),  # type: ignore[arg-type]
        attributes=attributes(spec.attrs),
    )


def export(t0_ns: int, by_service: dict[str, list[SpanSpec]]) -> ExportTraceServiceRequest:
    """An export with one ResourceSpans per service."""
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attributes({"service.name": service})),
                scope_spans=[ScopeSpans(spans=[span(s, t0_ns) for s in specs])],
            )
            for service, specs in by_service.items()
        ]
    )


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """The request in OTLP JSON: protobuf's JSON mapping with hex (not base64) IDs."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for item in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in item:
                        item[key] = base64.b64decode(item[key]).hex().upper()
    return json.dumps(document).encode()


def checkout(t0_ns: int, trace: int = 1) -> ExportTraceServiceRequest:
    """cart's POST /checkout calls payment, which fails with a 503."""
    return export(
        t0_ns,
        {
            "cart": [
                SpanSpec(
                    trace,
                    1,
                    "POST /checkout",
                    duration_ms=120,
                    attrs={"http.request.method": "POST", "http.response.status_code": 503},
                ),
                SpanSpec(
                    trace,
                    2,
                    "POST payment",
                    parent=1,
                    start_ms=10,
                    duration_ms=100,
                    kind=CLIENT,
                    status=ERROR,
                    attrs={
                        "http.response.status_code": 503,
                        "meshpy.source.identity": "spiffe://meshpy.local/ns/default/sa/cart",
                        "meshpy.destination.identity": "spiffe://meshpy.local/ns/default/sa/payment",
                        "meshpy.destination.service": "payment",
                        "meshpy.retry.attempt": 1,
                        "meshpy.mtls": True,
                    },
                ),
            ],
            "payment": [
                SpanSpec(
                    trace,
                    3,
                    "POST /charge",
                    parent=2,
                    start_ms=20,
                    duration_ms=80,
                    status=ERROR,
                    attrs={"http.response.status_code": 503, "error.type": "503"},
                ),
            ],
        },
    )
