"""`meshpy server --ready-file`: a real server says where it listens in a JSON file, not its log.

`meshpy up` learns its control plane's URL this way; these tests read only the file, so
they fail if the channel breaks even while the human log line still reads well.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from meshpy.readyfile import Ready, read_ready
from tests.integration.conftest import StartServer
from tests.integration.serverproc import READY_TIMEOUT_S, ServerProcess


def wait_ready_file(server: ServerProcess, path: Path) -> Ready:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        ready = read_ready(path)
        if ready is not None:
            return ready
        assert server.proc.poll() is None, server.log()
        time.sleep(0.02)
    raise AssertionError(f"no ready file after {READY_TIMEOUT_S}s:\n{server.log()}")


def test_the_ready_file_names_the_url_and_pid_and_goes_with_the_server(
    start_server: StartServer, tmp_path: Path
) -> None:
    ready_file = tmp_path / "ready.json"
    server = start_server(tmp_path / "home", ready=False, args=("--ready-file", str(ready_file)))

    ready = wait_ready_file(server, ready_file)

    assert json.loads(ready_file.read_text()) == {"url": ready.url, "pid": server.proc.pid}
    assert ready.pid == server.proc.pid
    assert ready.url.startswith("http://127.0.0.1:")
    assert not ready.url.endswith(":0")  # --listen 127.0.0.1:0: the port it got
    assert httpx.get(f"{ready.url}/healthz", timeout=5).status_code == 200
    assert (server.home / "server-url").read_text() == ready.url + "\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    assert server.stop() == 0
    assert not ready_file.exists()


def test_a_ready_file_that_cannot_be_written_stops_the_server(
    start_server: StartServer, tmp_path: Path
) -> None:
    ready_file = tmp_path / "no-such-dir" / "ready.json"
    server = start_server(tmp_path / "home", ready=False, args=("--ready-file", str(ready_file)))

    assert server.wait(READY_TIMEOUT_S) == 1
    log = server.log()
    assert f"meshpy server: error: cannot write {ready_file}: No such file or directory\n" in log
    assert "listening on" not in log
    assert not (server.home / "server-url").exists()
