"""``--access-log``: a sidecar writes one JSON line per request as it ends, with its trace
id and what the proxy did, and never a header's value; a file it can't write is refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


def _lines(path: Path, count: int) -> list[dict[str, Any]]:
    """The log's lines once there are ``count`` (the writer flushes every 20 ms)."""
    deadline = time.monotonic() + 10
    while True:
        text = path.read_text() if path.exists() else ""
        lines = [json.loads(line) for line in text.splitlines()]
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, f"{len(lines)} of {count} lines: {text}"
        time.sleep(0.1)


def test_each_request_is_a_json_line_on_both_sidecars(
    server: ServerProcess, start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    cart_log, loadgen_log = tmp_path / "cart.log", tmp_path / "loadgen.log"
    start_sidecar("cart", "--access-log", str(cart_log), app=APP)
    loadgen = start_sidecar("loadgen", "--access-log", str(loadgen_log))
    outbound = f"http://{loadgen.addresses['outbound']}"
    headers = {
        "host": "cart",
        "authorization": "Bearer secret-xyz",
        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01",
    }
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{outbound}/items?page=2", headers=headers).status_code == 200
        assert client.post(f"{outbound}/orders", headers=headers, content=b"{}").status_code == 200
        missing = client.get(f"{outbound}/", headers={"host": "nowhere"})
        assert missing.status_code == 404

    out = _lines(loadgen_log, 3)
    assert [(line["method"], line["path"], line["status"]) for line in out] == [
        ("GET", "/items", 200),
        ("POST", "/orders", 200),
        ("GET", "/", 404),
    ]
    assert {line["direction"] for line in out} == {"outbound"}
    assert [line["trace_id"] for line in out[:2]] == [TRACE, TRACE]
    assert out[0]["cluster"] == "cart.default", out[0]
    assert out[0]["endpoint"].startswith("127.0.0.1:"), out[0]
    assert out[2]["error"] is not None, "the proxy answered it: it says why"
    inbound = _lines(cart_log, 2)
    assert [(line["direction"], line["path"]) for line in inbound] == [
        ("inbound", "/items"),
        ("inbound", "/orders"),
    ]
    assert inbound[0]["source_identity"] == "spiffe://meshpy.local/ns/default/sa/loadgen"
    everything = cart_log.read_text() + loadgen_log.read_text()
    assert "secret-xyz" not in everything
    assert "page=2" not in everything, "queries can carry secrets: the path goes alone"


def test_a_log_file_that_cannot_be_written_is_refused(
    server: ServerProcess, tmp_path: Path
) -> None:
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshpy",
            "proxy",
            "run",
            "--service",
            "cart",
            "--server",
            server.url,
            "--token",
            "t",
            "--access-log",
            str(tmp_path / "no-such-dir" / "access.log"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 2, answer
    assert "--access-log" in answer.stderr
    assert "cannot append to" in answer.stderr
