"""The OTLP/HTTP receiver and the trace queries of a live server (SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import httpx
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.api.conftest import StartServer
from tests.api.live import LiveServer
from tests.otlpdata import MS, SpanSpec, checkout, export, otlp_json

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
TRACES = "/api/v1/traces"
TRACE_1 = f"{1:032x}"


def now_ns() -> int:
    return time.time_ns() - 60_000 * MS  # a minute ago: inside every `since` below


def stored(api: LiveServer) -> list[str]:
    answer = api.admin.get(TRACES, params={"limit": 500})
    assert answer.status_code == 200, answer.text
    return [t["trace_id"] for t in answer.json()["items"]]


def status_of(response: httpx.Response) -> str:
    """The message of the google.rpc.Status body of a failed export."""
    if response.headers["content-type"] == "application/json":
        message: str = response.json()["message"]
        return message
    return status_pb2.Status.FromString(response.content).message


def assert_healthy(api: LiveServer) -> None:
    assert api.client().get("/healthz").status_code == 200
    request = export(now_ns(), {"probe": [SpanSpec(99, 1, "GET /probe")]})
    answer = api.admin.post("/v1/traces", content=request.SerializeToString(), headers=PROTOBUF)
    assert answer.status_code == 200, answer.text
    assert f"{99:032x}" in stored(api)


def test_a_protobuf_export_is_stored_as_one_trace(api: LiveServer) -> None:
    t0 = now_ns()
    answer = api.client(api.join_token("cart")).post(
        "/v1/traces",
        content=export(
            t0, {"cart": [SpanSpec(1, 1, "POST /checkout", duration_ms=120)]}
        ).SerializeToString(),
        headers=PROTOBUF,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(answer.content) == ExportTraceServiceResponse()
    # The admin token exports any service's spans; the rest of the trace comes later.
    answer = api.admin.post(
        "/v1/traces", content=checkout(t0).SerializeToString(), headers=PROTOBUF
    )
    assert answer.status_code == 200, answer.text

    (summary,) = api.admin.get(TRACES).json()["items"]
    assert summary == {
        "trace_id": TRACE_1,
        "root_service": "cart",
        "root_operation": "POST /checkout",
        "start_time": summary["start_time"],
        "start_time_unix_nano": t0,
        "duration_ns": 120 * MS,
        "span_count": 3,
        "error": True,
        "services": ["cart", "payment"],
    }
    trace = api.admin.get(f"{TRACES}/{TRACE_1.upper()}").json()
    assert (trace["trace_id"], trace["span_count"], trace["truncated"]) == (TRACE_1, 3, False)
    spans = trace["spans"]
    assert [(s["service"], s["name"], s["parent_span_id"]) for s in spans] == [
        ("cart", "POST /checkout", None),
        ("cart", "POST payment", f"{1:016x}"),
        ("payment", "POST /charge", f"{2:016x}"),
    ]
    call = spans[1]
    assert (call["kind"], call["status_code"], call["http_status_code"]) == ("client", "error", 503)
    assert call["start_time_unix_nano"] == t0 + 10 * MS
    assert call["duration_ns"] == 100 * MS
    assert call["attributes"]["meshpy.destination.service"] == "payment"
    assert call["attributes"]["meshpy.mtls"] is True
    assert call["resource_attributes"] == {"service.name": "cart"}


def test_a_json_export_answers_json(api: LiveServer) -> None:
    answer = api.admin.post("/v1/traces", content=otlp_json(checkout(now_ns())), headers=JSON)
    assert answer.status_code == 200, answer.text
    assert (answer.headers["content-type"], answer.json()) == ("application/json", {})
    assert stored(api) == [TRACE_1]
    spans = api.admin.get(f"{TRACES}/{TRACE_1}").json()["spans"]
    assert [s["span_id"] for s in spans] == [f"{i:016x}" for i in (1, 2, 3)]


def test_gzip_bodies(api: LiveServer) -> None:
    body = gzip.compress(checkout(now_ns()).SerializeToString())
    answer = api.admin.post(
        "/v1/traces", content=body, headers={**PROTOBUF, "content-encoding": "gzip"}
    )
    assert answer.status_code == 200, answer.text
    assert stored(api) == [TRACE_1]


def test_query_filters(api: LiveServer) -> None:
    t0 = now_ns()
    for trace, specs in (
        (1, {"cart": [SpanSpec(1, 1, "GET /cart", duration_ms=900)]}),
        (2, {"payment": [SpanSpec(2, 1, "POST /charge", start_ms=1000, status=2)]}),
        (3, {"catalog": [SpanSpec(3, 1, "GET /items", start_ms=2000, duration_ms=5)]}),
    ):
        body = export(t0, specs).SerializeToString()
        assert api.admin.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200, (
            trace
        )

    def ids(**params: object) -> list[int]:
        answer = api.admin.get(TRACES, params=params)
        assert answer.status_code == 200, answer.text
        return [int(t["trace_id"], 16) for t in answer.json()["items"]]

    assert ids() == [3, 2, 1]
    assert ids(service="payment") == [2]
    assert ids(operation="GET /items") == [3]
    assert ids(min_duration="500ms") == [1]
    assert ids(status="error") == [2]
    assert ids(since="10m") == [3, 2, 1]
    assert ids(since="1s") == []
    assert ids(min_duration="10000000000000ms") == []  # longer than anything stored
    assert ids(since="99999999999999999999h") == [3, 2, 1]
    assert ids(order="slowest") == [1, 2, 3]
    assert ids(limit=1) == [3]
    bad_queries = (
        {"min_duration": "fast"},
        {"status": "ok"},
        {"limit": 0},
        {"limit": 501},
        {"operation": "\x00"},
        {"service": "a\x00b"},
    )
    for bad in bad_queries:
        assert api.admin.get(TRACES, params=bad).status_code == 422, bad


def test_reading_traces_takes_the_admin_token(api: LiveServer) -> None:
    assert api.client().get(TRACES).status_code == 401
    assert api.client(api.join_token("cart")).get(TRACES).status_code == 403
    assert api.client().get(f"{TRACES}/{TRACE_1}").status_code == 401
    missing = api.admin.get(f"{TRACES}/{TRACE_1}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    for malformed in ("xyz", "0" * 31, "g" * 32, "0" * 33):
        assert api.admin.get(f"{TRACES}/{malformed}").status_code == 422, malformed


def test_bad_exports_change_nothing(api: LiveServer) -> None:
    body = checkout(now_ns()).SerializeToString()
    garbage = api.admin.post("/v1/traces", content=b"\xff\xfe\x00garbage", headers=PROTOBUF)
    assert garbage.status_code == 400
    assert garbage.headers["content-type"] == "application/x-protobuf"
    assert "not a protobuf ExportTraceServiceRequest" in status_of(garbage)
    bad_json = api.admin.post("/v1/traces", content=b'{"resourceSpans": 5}', headers=JSON)
    assert bad_json.status_code == 400
    assert "not an OTLP JSON" in status_of(bad_json)
    bad_gzip = api.admin.post(
        "/v1/traces", content=b"\x1f\x8bnope", headers={**PROTOBUF, "content-encoding": "gzip"}
    )
    assert (bad_gzip.status_code, status_of(bad_gzip)[:21]) == (400, "the gzip body is corr")

    wrong_type = api.admin.post("/v1/traces", content=body, headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415
    assert "send application/x-protobuf or application/json" in status_of(wrong_type)
    assert api.admin.post("/v1/traces", content=body).status_code == 415
    deflate = api.admin.post(
        "/v1/traces", content=body, headers={**PROTOBUF, "content-encoding": "br"}
    )
    assert deflate.status_code == 415

    for client in (api.client(), api.client("mpj_nope.nope"), api.client("not-a-token")):
        denied = client.post("/v1/traces", content=body, headers=PROTOBUF)
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"] == "Bearer"
        assert "token" in status_of(denied)
    assert stored(api) == []
    assert_healthy(api)


def test_a_join_token_exports_its_own_service_only(api: LiveServer) -> None:
    cart = api.client(api.join_token("cart"))
    answer = cart.post("/v1/traces", content=otlp_json(checkout(now_ns())), headers=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": "this token exports spans of 'cart', not 'payment'",
        }
    }
    trace = api.admin.get(f"{TRACES}/{TRACE_1}").json()
    assert trace["services"] == ["cart"]


def _chunks(body: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_body_over_the_limit_gets_413(start_server: StartServer) -> None:
    api = start_server(trace_max_body=64 * 1024)
    big = export(now_ns(), {"cart": [SpanSpec(1, i + 1, "x" * 400) for i in range(400)]})
    body = big.SerializeToString()
    assert len(body) > 64 * 1024
    declared = api.admin.post("/v1/traces", content=body, headers=PROTOBUF)
    assert declared.status_code == 413
    assert "over 65536 bytes" in status_of(declared)
    streamed = api.admin.post("/v1/traces", content=_chunks(body), headers=PROTOBUF)
    assert streamed.status_code == 413
    bomb = gzip.compress(b"\x00" * (10 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    exploded = api.admin.post(
        "/v1/traces", content=bomb, headers={**PROTOBUF, "content-encoding": "gzip"}
    )
    assert exploded.status_code == 413
    assert "once decompressed" in status_of(exploded)
    assert stored(api) == []
    assert_healthy(api)


def test_too_many_exports_get_429(start_server: StartServer) -> None:
    api = start_server(trace_rate=0.01, trace_burst=2)
    body = json.dumps({}).encode()
    for _ in range(2):
        assert api.admin.post("/v1/traces", content=body, headers=JSON).status_code == 200
    limited = api.admin.post("/v1/traces", content=body, headers=JSON)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "too many exports from this token" in status_of(limited)
    # Each token has its own bucket.
    cart = api.client(api.join_token("cart"))
    assert cart.post("/v1/traces", content=body, headers=JSON).status_code == 200


def test_the_server_trims_the_store_by_itself(start_server: StartServer) -> None:
    api = start_server()
    t0 = now_ns()
    old = export(t0 - 3 * 3600_000 * MS, {"cart": [SpanSpec(1, 1, "GET /old")]})
    recent = export(t0, {"cart": [SpanSpec(i, 1, f"GET /{i}", start_ms=i) for i in (2, 3, 4)]})
    for request in (old, recent):
        body = request.SerializeToString()
        assert api.admin.post("/v1/traces", content=body, headers=PROTOBUF).status_code == 200
    assert len(stored(api)) == 4
    # A second server on the same database trims as it starts: 2 h at most, 2 spans at most.
    trimmer = start_server(trace_retention="2h", trace_max_spans=2)
    deadline = time.monotonic() + 10
    while len(stored(trimmer)) > 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored(trimmer) == [f"{4:032x}", f"{3:032x}"]
