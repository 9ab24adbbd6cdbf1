"""``meshpy traces`` and ``meshpy trace``, run as a user runs them, against a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.api.live import LiveServer
from tests.otlpdata import MS, SpanSpec, checkout, export

TRACE_1 = f"{1:032x}"
TRACE_2 = f"{2:032x}"


def meshpy(api: LiveServer, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("MESHPY_SERVER", None)
    env.pop("MESHPY_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "meshpy", *argv, "--server", api.url, "--token", api.admin_token],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


@pytest.fixture
def shop(api: LiveServer) -> LiveServer:
    """Trace 1: cart → payment failing; trace 2: a slow catalog request, later."""
    t0 = time.time_ns() - 60_000 * MS
    slow = export(t0 + 1000 * MS, {"catalog": [SpanSpec(2, 1, "GET /items", duration_ms=1500)]})
    for request in (checkout(t0), slow):
        answer = api.admin.post(
            "/v1/traces",
            content=request.SerializeToString(),
            headers={"content-type": "application/x-protobuf"},
        )
        assert answer.status_code == 200, answer.text
    return api


def test_traces_table(shop: LiveServer) -> None:
    done = meshpy(shop, "traces")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == [
        "TRACE",
        "ID",
        "ROOT",
        "START",
        "DURATION",
        "SPANS",
        "ERROR",
        "SERVICES",
    ]
    assert [row.split()[0] for row in rows] == [TRACE_2, TRACE_1]  # newest first
    assert rows[0].split()[1:3] == ["catalog", "GET"]
    assert rows[0].split()[-3:] == ["1.5s", "1", "catalog"]
    assert rows[1].split()[-5:] == ["120ms", "3", "error", "cart,", "payment"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], [TRACE_2, TRACE_1]),
        (["--service", "payment"], [TRACE_1]),
        (["--errors"], [TRACE_1]),
        (["--slowest", "1"], [TRACE_2]),
        (["--since", "10m"], [TRACE_2, TRACE_1]),
        (["--since", "1s"], []),
    ],
)
def test_traces_json(shop: LiveServer, options: list[str], expected: list[str]) -> None:
    done = meshpy(shop, "traces", *options, "-o", "json")
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)["items"]
    assert [t["trace_id"] for t in items] == expected


def test_trace_waterfall(shop: LiveServer) -> None:
    done = meshpy(shop, "trace", TRACE_1.upper())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"trace {TRACE_1}: 3 spans, 120ms, services cart, payment"
    columns = "SERVICE OPERATION START DURATION TIMELINE STATUS SOURCE → DESTINATION"
    assert lines[1].split() == columns.split()
    assert lines[2].startswith("cart ")
    assert lines[3].startswith("  cart ")
    assert lines[4].startswith("    payment ")
    # The trace's 120 ms on 40 columns: 3 ms each.
    assert "+0µs   120ms     " + "█" * 40 in lines[2]
    assert [line.split()[1:3] for line in lines[2:]] == [
        ["POST", "/checkout"],
        ["POST", "payment"],
        ["POST", "/charge"],
    ]
    assert "+10ms  100ms     ···" + "█" * 34 + "···" in lines[3]
    assert "+20ms  80ms      ······" + "█" * 28 + "······" in lines[4]
    assert lines[3].endswith("error 503  default/cart → default/payment")
    assert lines[4].endswith("error 503")
    assert lines[2].rstrip().endswith("unset 503")


def test_trace_json_is_the_api_answer(shop: LiveServer) -> None:
    done = meshpy(shop, "trace", TRACE_1, "-o", "json")
    assert done.returncode == 0, done.stderr
    trace = json.loads(done.stdout)
    assert trace == shop.admin.get(f"/api/v1/traces/{TRACE_1}").json()
    assert [s["name"] for s in trace["spans"]] == ["POST /checkout", "POST payment", "POST /charge"]


def test_cli_errors(shop: LiveServer) -> None:
    unknown = meshpy(shop, "trace", "f" * 32)
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == f"error: trace {'f' * 32} not found\n"
    malformed = meshpy(shop, "trace", "xyz")
    assert malformed.returncode == 2
    assert "a trace ID is 32 hex digits" in malformed.stderr
    bad_since = meshpy(shop, "traces", "--since", "soon")
    assert bad_since.returncode == 2
    assert "invalid duration 'soon'" in bad_since.stderr
    no_token = subprocess.run(
        [sys.executable, "-m", "meshpy", "traces", "--server", shop.url],
        capture_output=True,
        text=True,
        env={**os.environ, "MESHPY_HOME": "/nonexistent"},
        timeout=30,
        check=False,
    )
    assert no_token.returncode == 1
    assert "no admin token" in no_token.stderr
