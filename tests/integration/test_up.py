"""`meshpy up` and `meshpy demo` as real processes: a control plane, sidecars and apps.

Each test starts `meshpy up` (or `meshpy demo`) with its own MESHPY_HOME and a free port,
talks to the mesh it runs from outside, stops it with SIGTERM (or lets --duration end it),
and checks that every process it ever had below it is gone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meshpy.up.procs import ProcId, descendants

READY_TIMEOUT_S = 45.0

APP = """\
import os, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handle(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {os.environ['MESHPY_SERVICE']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

def call_back():
    while True:
        try:
            with urllib.request.urlopen("http://back/hello", timeout=2) as answer:
                text = answer.read().decode()
            with open(os.environ["OUT"] + ".tmp", "w") as out:
                out.write(text)
            os.replace(os.environ["OUT"] + ".tmp", os.environ["OUT"])
        except OSError:
            pass
        time.sleep(0.1)

if sys.argv[1] == "front":
    threading.Thread(target=call_back, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handle).serve_forever()
"""

MESH = """\
name: pair
services:
  back:
    run: python app.py back
    replicas: 2
    health: /healthz
  front:
    run: [python, app.py, front]
    env: {{OUT: "{out}"}}
    depends_on: [back]
"""


@dataclass
class UpProcess:
    """One `meshpy up` or `meshpy demo` this test started."""

    proc: subprocess.Popen[bytes]
    home: Path
    out_path: Path
    err_path: Path
    seen: set[ProcId] = field(default_factory=set)

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.out()}\n--- stderr\n{self.err()}"

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.out(), re.MULTILINE)
            if match:
                return match
            if self.proc.poll() is not None or time.monotonic() > deadline:
                msg = f"no {pattern!r} (exit code {self.proc.poll()}):\n{self.output()}"
                raise AssertionError(msg)
            time.sleep(0.1)

    def look(self) -> None:
        """Remember every process below `meshpy up` now."""
        self.seen |= descendants(self.proc.pid)

    def left_running(self) -> list[str]:
        """Processes seen below `meshpy up` that still exist (zombies included)."""
        left = []
        for proc in sorted(self.seen):
            try:
                stat = Path(f"/proc/{proc.pid}/stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if int(fields[19]) == proc.start:
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ")
                left.append(f"{proc.pid} ({fields[0].decode()}): {cmdline.decode()[:200]}")
        return left


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[list[UpProcess]]:
    started: list[UpProcess] = []
    yield started
    for up in started:  # a test that failed half-way: stop what it started, by PID
        if up.proc.poll() is None:
            up.proc.send_signal(signal.SIGTERM)
            try:
                up.proc.wait(45)
            except subprocess.TimeoutExpired:
                up.proc.kill()
                up.proc.wait(5)


def spawn_up(tmp: Path, *args: str) -> UpProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHPY_")}
    env["MESHPY_HOME"] = str(tmp / "home")
    out_path, err_path = tmp / "up.stdout", tmp / "up.stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshpy", *args, "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=tmp,
            env=env,
        )
    return UpProcess(proc, tmp / "home", out_path, err_path)


def meshpy_cli(home: Path, *args: str) -> str:
    """A meshpy command from "another terminal": it finds the server through MESHPY_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHPY_")}
    env["MESHPY_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "meshpy", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_up_runs_a_mesh_file_and_stops_every_process(
    tmp_path: Path, start_up: list[UpProcess]
) -> None:
    (tmp_path / "app.py").write_text(APP)
    out = tmp_path / "front.out"
    (tmp_path / "mesh.yaml").write_text(MESH.format(out=out))
    up = spawn_up(tmp_path, "up")
    start_up.append(up)

    url = up.wait_for(r"control plane (http://127\.0\.0\.1:\d+),", READY_TIMEOUT_S).group(1)
    assert not url.endswith(":0")
    up.wait_for(r"^meshpy up: ready: 3 instances of 2 services", READY_TIMEOUT_S)
    assert f"admin token in {up.home / 'admin-token'}" in up.out()
    up.look()

    # front calls back by name, through its sidecar and back's, over mTLS.
    deadline = time.monotonic() + 15
    while not (out.exists() and out.read_text() == "hello from back"):
        assert time.monotonic() < deadline, up.output()
        time.sleep(0.1)

    # Another terminal reaches the same control plane through MESHPY_HOME alone.
    services = json.loads(meshpy_cli(up.home, "service", "list", "-o", "json"))
    ready = {s["name"]: s["endpoints_ready"] for s in services["items"]}
    assert ready == {"back": 2, "front": 1}
    assert "SYNCED" in meshpy_cli(up.home, "proxy", "status")

    up.wait_for(r"^  SERVICE +VERSION +INSTANCE +STATE", 15)  # the plain table, not a TTY
    up.look()
    # A server, three sidecars, three apps; sidecars and apps are all Python processes.
    assert len(up.seen) >= 7, up.seen

    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(45) == 0, up.output()
    assert up.left_running() == []
    text = up.out()
    assert "meshpy up: stopped\n" in text
    back = re.search(r"^  back +(\d+) requests in, 100\.0% ok", text, re.MULTILINE)
    assert back, text
    assert int(back.group(1)) > 0
    assert "mTLS: every hop between services was mutual TLS" in text
    assert (up.home / "logs" / "back-1.log").exists()
    assert (up.home / "logs" / "server.log").exists()


def test_up_exits_1_with_the_log_of_what_failed_to_start(
    tmp_path: Path, start_up: list[UpProcess]
) -> None:
    (tmp_path / "mesh.yaml").write_text(
        "services:\n"
        "  broken:\n"
        "    run: python -c \"import sys; print('no database here'); sys.exit(3)\"\n"
        "    restart: never\n"
    )
    up = spawn_up(tmp_path, "up", "--ready-timeout", "30")
    start_up.append(up)
    up.wait_for(r"^meshpy up: starting broken-1", READY_TIMEOUT_S)
    up.look()
    assert up.proc.wait(60) == 1, up.output()
    err = up.err()
    assert "meshpy up: broken-1: its app exited with code 3 (restart: never)" in err
    assert "no database here" in err  # the tail of its log
    assert up.left_running() == []


ROLLOUT_MESH = """\
services:
  back:
    health: /healthz
    versions:
      v1: {run: python app.py back}
      v2: {run: python app.py back}
  side:
    versions:
      v1: {run: python app.py side}
      v2: {run: python app.py side, replicas: 0}
rollouts:
  - {service: back, to: v2, steps: [50, 100], interval: 10m}
  - {service: side, to: v2, after: 500ms}
"""


@pytest.mark.timeout(120)
def test_the_end_of_up_interrupts_a_rollout_which_rolls_back_and_one_that_cannot_start_is_reported(
    tmp_path: Path, start_up: list[UpProcess]
) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "mesh.yaml").write_text(ROLLOUT_MESH)
    up = spawn_up(tmp_path, "up", "--duration", "4")
    start_up.append(up)
    up.wait_for(r"^meshpy up: ready: 3 instances of 2 services", READY_TIMEOUT_S)
    up.look()
    up.wait_for(r"^meshpy up: rollout back: step 1/2: 50% of back to v2, 50% to v1", 10)
    up.wait_for(r"^meshpy up: rollout side: not started: side-v2 has no healthy instance", 10)
    # --duration ends the watch in the middle of the 10-minute step: no waiting it out.
    assert up.proc.wait(60) == 0, up.output()
    assert up.left_running() == []
    text = up.out()
    rolled_back = "meshpy up: rollout back: rolling back: every request of back to v1\n"
    assert text.index(rolled_back) < text.index("meshpy up: stopping 3 instances"), text
    summary = text[text.index("meshpy up: summary of ") :]
    assert re.search(
        r"^  rollout back v1 -> v2: interrupted at 50% after [\d.]+m?s \(meshpy up stopped\): "
        r"rolled back to v1$",
        summary,
        re.MULTILINE,
    ), summary
    assert "  rollout side v1 -> v2: not started: side-v2 has no healthy instance\n" in summary, (
        summary
    )


@pytest.mark.timeout(150)
def test_demo_rolls_the_failing_canary_back_and_shows_mtls_on_every_hop(
    tmp_path: Path, start_up: list[UpProcess]
) -> None:
    up = spawn_up(tmp_path, "demo", "--duration", "120")
    start_up.append(up)
    up.wait_for(r"^meshpy up: ready: 8 instances of 4 services", READY_TIMEOUT_S)
    up.look()
    # The table's footer: v2 gets some of payment's traffic (the demo's 90/10 route)...
    up.wait_for(r"^  payment: v1 [\d.]+% / v2 (?!0\.0%)[\d.]+%", 20)
    # ...then the rollout's first step sees v2 fail one charge in ten, and rolls back.
    up.wait_for(r"^meshpy up: rollout payment: step 1/3: 10% of payment to v2, 90% to v1", 20)
    failed = up.wait_for(
        r"^meshpy up: rollout payment: 10%: failed: "
        r"(error rate [\d.]+% \((\d+) of (\d+)\) > 1%)$",
        40,
    )
    errors, requests = int(failed.group(2)), int(failed.group(3))
    assert requests >= 10, failed.group(0)  # min_requests
    assert errors >= requests // 10, failed.group(0)  # every tenth charge of v2 fails
    up.wait_for(r"^meshpy up: rollout payment: rolling back: every request of payment to v1$", 10)
    route = json.loads(meshpy_cli(up.home, "get", "httproute", "payment", "-o", "json"))
    backends = [ref["name"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
    assert backends == ["payment-v1"], route
    edges = json.loads(meshpy_cli(up.home, "edges", "-o", "json"))
    found = {
        (r["source"]["service"], r["destination"]["service"], r["mtls"]) for r in edges["rows"]
    }
    assert {
        ("loadgen", "cart", True),
        ("cart", "payment", True),
        ("cart", "recommendation", True),
    } <= found, edges
    identities = {r["source"]["service"]: r["identity"] for r in edges["rows"]}
    assert identities["cart"] == "spiffe://meshpy.local/ns/default/sa/cart", edges
    up.look()
    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(60) == 0, up.output()
    assert up.left_running() == []

    text = up.out()
    summary = text[text.index("meshpy up: summary of shop") :]
    counts = {
        (m.group(1), m.group(2)): int(m.group(3))
        for m in re.finditer(r"^  (\w+)(?: (v\d))? +(\d+) requests in", summary, re.MULTILINE)
    }
    assert set(counts) == {
        ("recommendation", None),
        ("payment", "v1"),
        ("payment", "v2"),
        ("cart", None),
        ("loadgen", None),
    }, summary
    assert counts[("cart", None)] > 100, summary  # about 25 a second
    v2 = re.search(
        r"^  payment v2 +\d+ requests in, [\d.]+% of payment, ([\d.]+)% ok", summary, re.M
    )
    assert v2, summary
    assert float(v2.group(1)) < 100.0, summary  # its failures
    rollout = re.search(
        r"^  rollout payment v1 -> v2: rolled back to v1 at 10% after [\d.]+m?s: (.*)$",
        summary,
        re.MULTILINE,
    )
    assert rollout, summary
    assert rollout.group(1) == failed.group(1), summary
    mtls = re.search(
        r"^  mTLS: every hop between services was mutual TLS: (\d+) requests into 8 sidecars, "
        r"0 in plaintext; inbound listeners strict; "
        r"identities spiffe://meshpy\.local/ns/default/sa/\{cart,loadgen,payment,recommendation\}$",
        summary,
        re.MULTILINE,
    )
    assert mtls, summary
    assert int(mtls.group(1)) == sum(counts.values()), summary  # every request into a sidecar
    # A checkout is one trace across the shop: loadgen -> cart -> recommendation and payment.
    traces = re.findall(r"^    ([0-9a-f]{32}) +[\d.]+ms +(\d+) spans across (.*)$", summary, re.M)
    assert len(traces) == 3, summary
    for _, spans, services in traces:
        if services.endswith(", failed"):
            # A checkout that payment v2 failed may end there (loadgen -> cart -> payment),
            # and may be among the slowest.
            assert int(spans) >= 4, summary
            assert services.startswith("cart, loadgen, payment"), summary
        else:
            assert int(spans) >= 6, summary  # a client and a server span per hop
            assert services.startswith("cart, loadgen, payment, recommendation"), summary
