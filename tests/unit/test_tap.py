"""meshpy.tap and the lines of meshpy tap/top: the rate split and bucket, SSE both ways,
the merge of proxies' NDJSON streams (with fake proxies), and the per-path summary."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from meshpy import tap
from meshpy.cli.tap import request_line, top_table


@pytest.mark.parametrize(
    ("max_rps", "instances", "share"),
    [(10, 1, 10), (10, 3, 4), (10, 0, 10), (1, 5, 1), (1000, 7, 143)],
)
def test_per_instance_rps(max_rps: int, instances: int, share: int) -> None:
    assert tap.per_instance_rps(max_rps, instances) == share


def test_token_bucket_burst_then_rate() -> None:
    bucket = tap.TokenBucket(5, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(100)) == 5
    assert not bucket.take(0.1)
    assert bucket.take(0.2)
    flood = tap.TokenBucket(5, now=0.0)
    assert 14 <= sum(flood.take(i / 1000) for i in range(2000)) <= 15
    back = tap.TokenBucket(1, now=10.0)
    assert back.take(10.0)
    assert not back.take(0.0), "a clock that goes back gives nothing"


def test_sse_round_trip_skips_comments() -> None:
    text = (
        tap.sse("start", {"instances": ["a"]})
        + b": keep-alive\n\n"
        + tap.sse("request", {"path": "/é", "status": 200})
    ).decode()
    assert list(tap.parse_sse(text.split("\n"))) == [
        ("start", {"instances": ["a"]}),
        ("request", {"path": "/é", "status": 200}),
    ]


def test_params_query_splits_the_rate() -> None:
    params = tap.TapParams(path="/api", method="GET", max_rps=10, headers=True, duration_s=5)
    assert params.query(4) == {
        "max_rps": "3",
        "duration": "5",
        "headers": "1",
        "bodies": "0",
        "path": "/api",
        "method": "GET",
    }


def _ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n\n" for line in lines)


def _event(path: str, status: int = 200) -> dict[str, Any]:
    return {"type": "request", "method": "GET", "path": path, "status": status, "latency_ms": 1.5}


def _merge(handler: Any, targets: list[tap.Target], params: tap.TapParams) -> list[Any]:
    async def run() -> list[Any]:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        out = b""
        async for chunk in tap.merge(targets, params, client=client):
            out += chunk
        return list(tap.parse_sse(out.decode().split("\n")))

    return asyncio.run(run())


def test_merge_forwards_every_proxy_within_the_rate_and_reports_failures() -> None:
    asked: list[httpx.URL] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        if request.url.host == "10.0.0.3":
            return httpx.Response(429, text="8 taps are open on this proxy already\n")
        if request.url.host == "10.0.0.2":
            raise httpx.ConnectError("refused")
        body = _ndjson(*[_event(f"/{i}") for i in range(6)], {"type": "end", "limited": 4})
        return httpx.Response(200, content=body)

    targets = [
        tap.Target("one", "10.0.0.1:9901"),
        tap.Target("two", "10.0.0.2:9901"),
        tap.Target("three", "10.0.0.3:9901"),
    ]
    events = _merge(proxy, targets, tap.TapParams(max_rps=5, duration_s=2))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start"
    assert kinds[-1] == "end"
    requests = [data for kind, data in events if kind == "request"]
    # The merge's own bucket: 5 at once, of the 6 that came in an instant.
    assert [r["path"] for r in requests] == ["/0", "/1", "/2", "/3", "/4"]
    assert all(r["instance"] == "one" for r in requests)
    errors = {data["instance"]: data["reason"] for kind, data in events if kind == "error"}
    assert set(errors) == {"two", "three"}
    assert errors["three"].startswith("429: 8 taps are open")
    assert events[-1][1] == {"events": 5, "limited": 4 + 1, "dropped": 0, "failed": 2}
    assert all(url.path == "/tap" for url in asked)
    assert {url.params["max_rps"] for url in asked} == {"2"}, "5 split among 3"


def test_summary_rows_and_table() -> None:
    rows: dict[tuple[str, str], tap.PathStats] = {}
    for path, status, latency in [("/a", 200, 5.0), ("/a", 503, 9.0), ("/a", 200, 7.0)]:
        event = {"method": "GET", "path": path, "status": status, "latency_ms": latency}
        tap.summarise(rows, event)
    tap.summarise(rows, {"method": "POST", "path": "/b", "status": 404, "latency_ms": 1.0})
    row = rows[("GET", "/a")].as_dict()
    assert row["count"] == 3
    assert row["success"] == 2
    assert row["latency_ms"] == {"best": 5.0, "worst": 9.0, "last": 7.0}
    assert row["status_codes"] == {"200": 2, "503": 1}
    ranked = sorted(rows.values(), key=lambda r: -r.count)
    lines = top_table(ranked, 10).splitlines()
    assert lines[1].split() == ["GET", "/a", "3", "66.7%", "5.0ms", "9.0ms", "7.0ms"]
    assert lines[2].split()[:4] == ["POST", "/b", "1", "100.0%"], "a 404 is no failure"
    assert top_table([], 10) == "no requests yet\n"


def test_request_line() -> None:
    line = request_line(
        {
            "time": 0.25,
            "direction": "inbound",
            "method": "GET",
            "authority": "cart",
            "path": "/x",
            "status": 503,
            "latency_ms": 12.345,
            "source_identity": "spiffe://meshpy.local/ns/default/sa/web",
            "route": {"vhost": 0, "rule": 2, "match": None},
            "error": "upstream-timeout",
            "headers": [["x-a", "1"], ["authorization", "[redacted]"]],
        }
    )
    first, *headers = line.split("\n")
    assert first.split()[1:6] == ["inbound", "GET", "cart/x", "503", "12.3ms"]
    assert "route=0/2/-" in first
    assert first.endswith("error=upstream-timeout")
    assert headers == ["    x-a: 1", "    authorization: [redacted]"]
