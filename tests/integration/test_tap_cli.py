"""``meshpy tap`` and ``meshpy top`` against a real control plane and sidecars over mTLS:
the requests sent during a tap show with their method, path, status and the caller's
verified identity; credentials never show; the rate holds; top counts exactly."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP

LOADGEN = "spiffe://meshpy.local/ns/default/sa/loadgen"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SECRET = "secret-xyz"


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


def _env(server: ServerProcess) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "250", "MESHPY_HOME": str(server.home)}


def _spawn(server: ServerProcess, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "meshpy", *argv, "--server", server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(server),
    )


def _meshpy(server: ServerProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshpy", *argv, "--server", server.url],
        capture_output=True,
        text=True,
        env=_env(server),
        timeout=60,
        check=False,
    )


def _until_ready(server: ServerProcess, service: str) -> None:
    """Until the control plane counts the service's instance ready (its first health report)."""
    deadline = time.monotonic() + 20
    while True:
        answer = server.client().get(f"/api/v1/namespaces/default/services/{service}")
        if answer.status_code == 200:
            endpoints = answer.json().get("endpoints") or []
            if endpoints and all(e["state"] == "healthy" for e in endpoints):
                return
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)


def _tapping(process: subprocess.Popen[str]) -> list[str]:
    """Stderr lines up to "tapping instance ...": the proxy's tap is open from then on."""
    assert process.stderr is not None
    lines = []
    while True:
        line = process.stderr.readline()
        assert line, f"the tap ended before it began: {lines}, {process.communicate()}"
        lines.append(line)
        if line.startswith("tapping instance "):
            return lines


def _finish(process: subprocess.Popen[str], early: list[str]) -> tuple[str, str]:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, (out, err)
    return out, "".join(early) + err


@pytest.fixture
def mesh(server: ServerProcess, start_sidecar: StartSidecar) -> ProxyProcess:
    """cart (with the test app) called by loadgen over mTLS; returns loadgen's sidecar."""
    start_sidecar("cart", app=APP)
    loadgen = start_sidecar("loadgen", "--version", "v1")
    _until_ready(server, "cart")
    return loadgen


def test_tap_shows_requests_with_identity_and_never_credentials(
    server: ServerProcess, mesh: ProxyProcess
) -> None:
    outbound = f"http://{mesh.addresses['outbound']}"
    common = ("tap", "cart", "--direction", "inbound", "--headers", "--duration", "5s")
    as_json = _spawn(server, *common, "-o", "json", "--max-rps", "100")
    as_lines = _spawn(server, *common)
    bodies = _spawn(
        server, "tap", "cart", "--path", "/orders", "--bodies", "--duration", "5s", "-o", "json"
    )
    early = {"json": _tapping(as_json), "lines": _tapping(as_lines), "bodies": _tapping(bodies)}
    with httpx.Client(timeout=10) as client:
        first = client.get(
            f"{outbound}/items/1?q=1",
            headers={
                "host": "cart",
                "authorization": f"Bearer {SECRET}",
                "cookie": f"sid={SECRET}",
                "x-api-key": SECRET,
                "x-visible": "plain-value",
                "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
            },
        )
        assert first.status_code == 200
        order = b'{"items": "' + b"x" * 5000 + b'"}'
        second = client.post(f"{outbound}/orders", headers={"host": "cart"}, content=order)
        assert second.status_code == 200
    out, err = _finish(as_json, early["json"])
    lines_out, lines_err = _finish(as_lines, early["lines"])
    bodies_out, _ = _finish(bodies, early["bodies"])
    # --bodies: the first 4 KiB of the request's body and all of the (short) response's.
    [with_bodies] = [json.loads(line) for line in bodies_out.splitlines()]
    assert with_bodies["path"] == "/orders"
    assert with_bodies["request_body"] == {
        "text": order[:4096].decode(),
        "bytes": len(order),
        "truncated": True,
    }
    assert with_bodies["response_body"]["truncated"] is False
    assert with_bodies["response_body"]["bytes"] == len(second.content)
    assert json.loads(with_bodies["response_body"]["text"]) == second.json()
    for text in (out, err, lines_out, lines_err):
        assert SECRET not in text
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["method"], e["path"], e["status"]) for e in events] == [
        ("GET", "/items/1", 200),
        ("POST", "/orders", 200),
    ]
    get = events[0]
    for event in events:
        assert "request_body" not in event, "bodies only for a tap that asks"
        assert event["direction"] == "inbound"
        assert event["source_identity"] == LOADGEN
        assert event["authority"] == "cart"
        assert event["endpoint"], event
        assert event["cluster"], event
        assert event["latency_ms"] > 0
    assert get["trace_id"] == TRACE, "the trace the request came with"
    headers = dict(get["headers"])
    assert headers["x-visible"] == "plain-value"
    for name in ("authorization", "cookie", "x-api-key"):
        assert headers[name] == "[redacted]", headers
    assert "2 events; 0 over the rate" in err
    # The line format: the essentials first, then key=value, headers below.
    request_lines = [line for line in lines_out.splitlines() if not line.startswith("    ")]
    assert len(request_lines) == 2, lines_out
    assert request_lines[0].split()[1:5] == ["inbound", "GET", "cart/items/1", "200"]
    assert f"src={LOADGEN}" in request_lines[0]
    assert f"trace={TRACE}" in request_lines[0]
    assert "    authorization: [redacted]" in lines_out
    assert "    x-visible: plain-value" in lines_out


def test_tap_holds_its_rate(server: ServerProcess, mesh: ProxyProcess) -> None:
    rate, sent = 5, 200
    tap = _spawn(server, "tap", "cart", "--max-rps", str(rate), "--duration", "3s", "-o", "json")
    early = _tapping(tap)
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        for i in range(sent):
            url = f"http://{mesh.addresses['outbound']}/n/{i}"
            answer = client.get(url, headers={"host": "cart"})
            assert answer.status_code == 200
    took = time.monotonic() - started
    out, err = _finish(tap, early)
    events = [json.loads(line) for line in out.splitlines()]
    # A burst of `rate`, then `rate` a second while the requests came (the tap saw
    # both ends of the requests: cart's inbound, no outbound).
    bound = rate + rate * (took + 1)
    assert 1 <= len(events) <= bound, (len(events), took)
    assert len(events) < sent
    assert all(e["path"].startswith("/n/") for e in events)
    assert " over the rate" in err
    limited = int(err.split(" events; ")[1].split(" over the rate")[0])
    assert limited >= sent - bound, err


def test_top_counts_each_path(server: ServerProcess, mesh: ProxyProcess) -> None:
    load = {("GET", "/a"): 12, ("POST", "/b"): 5, ("GET", "/c/1"): 3}
    as_json = _spawn(server, "top", "cart", "--duration", "4s", "-o", "json")
    as_table = _spawn(server, "top", "cart", "--duration", "4s")
    early = {"json": _tapping(as_json), "table": _tapping(as_table)}
    with httpx.Client(timeout=10) as client:
        for (method, path), count in load.items():
            for _ in range(count):
                url = f"http://{mesh.addresses['outbound']}{path}"
                answer = client.request(method, url, headers={"host": "cart"})
                assert answer.status_code == 200
    out, _ = _finish(as_json, early["json"])
    summary: dict[str, Any] = json.loads(out)
    assert summary["events"] == sum(load.values())
    assert summary["limited"] == 0
    counted = {(p["method"], p["path"]): p for p in summary["paths"]}
    assert {key: p["count"] for key, p in counted.items()} == load
    assert (summary["paths"][0]["method"], summary["paths"][0]["path"]) == ("GET", "/a")
    for path in counted.values():
        assert path["success_rate"] == 1.0
        assert path["status_codes"] == {"200": path["count"]}
        latency = path["latency_ms"]
        assert 0 < latency["best"] <= latency["last"] <= latency["worst"], latency
    table, _ = _finish(as_table, early["table"])
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["METHOD", "PATH", "COUNT", "SUCCESS", "BEST", "WORST", "LAST"]
    assert [row[:4] for row in rows[1:]] == [
        ["GET", "/a", "12", "100.0%"],
        ["POST", "/b", "5", "100.0%"],
        ["GET", "/c/1", "3", "100.0%"],
    ]


BAD_QUESTIONS = [
    (["tap", "nosuch"], "error: service default/nosuch not found"),
    (["tap", "Cart!"], "error: SERVICE: 'Cart!' is not a name"),
    (["tap", "cart", "--path", "items"], "error: --path: 'items' is not a path prefix"),
    (["tap", "cart", "--method", "G T"], "error: --method: 'G T' is not an HTTP method"),
    (["tap", "cart", "--duration", "11m"], "error: --duration: '11m' is not 1s to 10m"),
    (["tap", "cart", "--duration", "soon"], "invalid duration 'soon'"),
    (["tap", "cart", "--direction", "up"], "error: --direction: 'up' is not inbound"),
    (["tap", "cart", "--max-rps", "0"], "--max-rps"),
    (["top", "cart", "-n", "elsewhere"], "error: service elsewhere/cart not found"),
]


def test_bad_questions_exit_2_with_the_reason(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("cart", app=APP)
    for argv, message in BAD_QUESTIONS:
        answer = _meshpy(server, *argv)
        assert answer.returncode == 2, (argv, answer)
        assert message in answer.stderr, (argv, answer.stderr)
        assert "Traceback" not in answer.stderr


def test_admin_taps_are_bounded_and_closed_when_their_client_leaves(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    cart = start_sidecar("cart", app=APP)
    admin = f"http://{cart.addresses['admin']}/tap"
    with httpx.Client(timeout=10) as client:
        bad = client.get(admin, params={"max_rps": "0"})
        assert bad.status_code == 400
        assert bad.text.startswith("max_rps: ")
        # A tap of one second ends by itself, with its totals.
        with client.stream("GET", admin, params={"duration": "1"}) as short:
            assert short.headers["content-type"] == "application/x-ndjson"
            lines = [line for line in short.iter_lines() if line.strip()]
        assert [json.loads(line) for line in lines] == [{"type": "end", "limited": 0, "dropped": 0}]
        with contextlib.ExitStack() as taps:
            for _ in range(8):
                tap = taps.enter_context(client.stream("GET", admin, params={"duration": "60"}))
                assert tap.status_code == 200
            ninth = client.get(admin)
            assert ninth.status_code == 429, ninth.text
        # The eight clients left: their taps close at the next heartbeat that fails.
        deadline = time.monotonic() + 10
        while True:
            with client.stream("GET", admin, params={"duration": "1"}) as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the taps of clients that left stay open"
            time.sleep(0.5)
