"""``meshpy stat`` and ``meshpy edges`` against a real control plane and sidecars over mTLS:
the counts are exactly what was sent and answered, the latency falls in the bucket of the
app's delay, the edges carry the callers' identities, and bad questions exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import grpc
import httpx
import pytest

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP

CALLS = 20
FAIL_RATE = 0.25  # payment fails every fourth request: 5 of 20
DELAY_S = 0.03
IDENTITY = "spiffe://meshpy.local/ns/default/sa/{}"


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


def _meshpy(server: ServerProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "MESHPY_HOME": str(server.home)}
    return subprocess.run(
        [sys.executable, "-m", "meshpy", *argv, "--server", server.url],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _stats(server: ServerProcess, **params: str) -> dict[str, Any]:
    """``GET /api/v1/stats``: what ``meshpy stat -o json`` prints."""
    answer = server.client().get("/api/v1/stats", params=params)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _until_counted(server: ServerProcess, requests: int, **params: str) -> dict[str, Any]:
    """The answer once its rows add up to ``requests`` (sidecars report every second)."""
    deadline = time.monotonic() + 15
    while True:
        answer = _stats(server, **params)
        counted = sum(row["requests"] for row in answer["rows"])
        if counted >= requests:
            return answer
        assert time.monotonic() < deadline, f"{counted} of {requests} counted: {answer}"
        time.sleep(0.5)


def test_stat_and_edges_count_what_was_sent(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    app = (*APP, "--fail-rate", str(FAIL_RATE), "--delay", str(DELAY_S))
    start_sidecar("payment", "--version", "v2", app=app)
    start_sidecar("cart", app=APP)
    loadgen = start_sidecar("loadgen", "--version", "v1")
    outbound = f"http://{loadgen.addresses['outbound']}"
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=10) as client:
        for _ in range(CALLS):
            answer = client.get(f"{outbound}/call/payment/charge", headers={"host": "cart"})
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
    failed = int(CALLS * FAIL_RATE)
    # cart answers 502 when payment answered 500 (the app's /call passes failures on so).
    assert statuses == {200: CALLS - failed, 502: failed}

    payment = _until_counted(server, CALLS, service="payment", window="5m")
    [row] = payment["rows"]
    assert row["destination"] == {"namespace": "default", "service": "payment", "version": "v2"}
    assert (row["requests"], row["failures"]) == (CALLS, failed)
    assert row["status_codes"] == {"200": CALLS - failed, "500": failed}
    assert row["success_rate"] == pytest.approx((CALLS - failed) / CALLS)
    assert row["rps"] == pytest.approx(CALLS / 300)
    assert row["meshed"] == {"ready": 1, "total": 1}
    # Every answer took the app's delay and a little more: the median is within the bucket
    # (25, 50] ms. A loaded machine may stretch a few answers, so the tail is only ordered.
    latency = row["latency_s"]
    assert 0.025 <= latency["p50"] <= 0.05, latency
    assert latency["p50"] <= latency["p95"] <= latency["p99"], latency

    cart = _until_counted(server, CALLS, service="cart", window="5m")
    assert [(r["requests"], r["failures"]) for r in cart["rows"]] == [(CALLS, failed)]
    from_loadgen = _stats(server, service="payment", window="5m", **{"from": "loadgen"})
    assert from_loadgen["rows"] == [], "loadgen calls cart, never payment"

    # What cart's sidecar sent to payment (client side): the same requests.
    sent = _until_counted(server, CALLS, service="cart", to="payment", window="5m")
    [towards] = sent["rows"]
    assert towards["source"]["service"] == "cart"
    assert towards["destination"]["service"] == "payment"
    assert towards["status_codes"] == {"200": CALLS - failed, "500": failed}

    table = _meshpy(server, "stat", "-t", "5m")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "NAME",
        "VERSION",
        "MESHED",
        "SUCCESS",
        "RPS",
        "LATENCY_P50",
        "LATENCY_P95",
        "LATENCY_P99",
        "TCP_CONN",
    ]
    by_name = {line.split()[1]: line.split() for line in lines[1:]}
    assert set(by_name) == {"cart", "payment", "loadgen"}
    assert by_name["payment"][2:6] == ["v2", "1/1", "75.00%", "0.1"]
    # loadgen has no app: nothing came into it, and its row says so.
    assert by_name["loadgen"][2:9] == ["v1", "1/1", "-", "0.0", "-", "-", "-"]
    assert all(fields[9].isdigit() for fields in by_name.values()), lines

    as_json = _meshpy(server, "edges", "-t", "5m", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    edges = json.loads(as_json.stdout)
    found = {
        (r["source"]["service"], r["destination"]["service"]): (
            r["identity"],
            r["mtls"],
            r["requests"],
        )
        for r in edges["rows"]
    }
    assert found == {
        ("loadgen", "cart"): (IDENTITY.format("loadgen"), True, CALLS),
        ("cart", "payment"): (IDENTITY.format("cart"), True, CALLS),
    }
    edge_table = _meshpy(server, "edges", "payment")
    assert edge_table.returncode == 0, edge_table.stderr
    assert edge_table.stdout.splitlines()[1].split() == [
        "cart",
        "payment",
        "v2",
        "default",
        "default",
        "yes",
        IDENTITY.format("cart"),
        str(CALLS),
    ]


GRPC_APP = (sys.executable, "-m", "tests.integration.grpcapp")


def test_grpc_failures_count_against_success(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("echo", "--protocol", "grpc", app=GRPC_APP)
    cart = start_sidecar("cart")
    options = [("grpc.default_authority", "echo"), ("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(cart.addresses["outbound"], options=options) as channel:
        say, fail = channel.unary_unary("/test.Echo/Say"), channel.unary_unary("/test.Echo/Fail")
        for _ in range(6):
            assert say(b"hi", timeout=5) == b"none:hi"  # no version given
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as refused:
                fail(b"thing", timeout=5)
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    echo = _until_counted(server, 9, service="echo", window="5m")
    [row] = echo["rows"]
    # Every answer is HTTP 200; three carry grpc-status 5 (NOT_FOUND), and fail.
    assert (row["status_codes"], row["grpc_statuses"]) == ({"200": 9}, {"0": 6, "5": 3})
    assert (row["requests"], row["failures"]) == (9, 3)
    assert row["success_rate"] == pytest.approx(6 / 9)
    assert row["tcp"]["read_bytes_per_s"] > 0


BAD_QUESTIONS = [  # the server's answers; the CLI's own checks: tests/unit/test_cli_stat.py
    (["stat", "nosuch"], "error: service 'nosuch' not found\n"),
    (["stat", "cart", "--from", "nosuch"], "error: service 'nosuch' not found\n"),
    (["stat", "-t", "2h"], "error: window: '2h' is outside 10s to 3600s"),
    (["stat", "-t", "5s"], "error: window: '5s' is outside 10s to 3600s"),
    (["edges", "-n", "elsewhere", "cart"], "error: service 'cart' in namespace 'elsewhere'"),
]


def test_bad_questions_exit_2_with_the_reason(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("cart", app=APP)
    for argv, message in BAD_QUESTIONS:
        answer = _meshpy(server, *argv)
        assert answer.returncode == 2, answer
        assert message in answer.stderr, (argv, answer.stderr)
        assert "Traceback" not in answer.stderr
