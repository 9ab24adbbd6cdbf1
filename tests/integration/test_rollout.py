"""`meshpy rollout` with real processes: a control plane, sidecars of payment v1 and v2 and of
a client, a steady load through the client's sidecar, and the real CLI as a subprocess.

A healthy v2 is promoted to every request (exit 0); a v2 whose app answers 10% of its
requests with a 500 is rolled back to v1 (exit 1); Ctrl-C rolls back too (exit 130).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import StartServer, StartSidecar
from tests.integration.proxyproc import meshpy_cmd
from tests.integration.serverproc import ServerProcess, server_env
from tests.integration.sidecars import APP, Load

# Sidecars report their inbound stats with every renewal: twice a second here.
FAST = {
    "MESHPY_LEASE_TTL": "3s",
    "MESHPY_RENEW_EVERY": "500ms",
    "MESHPY_HEALTH_THRESHOLD": "1",
    "MESHPY_REMOVAL_GRACE": "60s",
}
# p99 well above what a busy test machine may take now and then: the latency gate has unit
# tests; here the error rate decides.
GATE = ("--max-error-rate", "1%", "--max-p99", "1s", "--min-requests", "5")
ROUTE = "/api/v1/namespaces/default/httproutes/payment"


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST)


def _mesh(start_sidecar: StartSidecar, *v2_args: str) -> Load:
    """payment v1 and v2 behind a client's sidecar; a load on payment through it."""
    start_sidecar("payment", "--version", "v1", app=APP, name="payment-v1")
    start_sidecar("payment", "--version", "v2", app=(*APP, *v2_args), name="payment-v2")
    client = start_sidecar("client", app=APP)
    return Load(f"http://{client.addresses['outbound']}/", "payment", rate=40, threads=4)


def _versions_seen(load: Load, since: float) -> set[object]:
    return {body.get("version") for at, body in list(load.answers) if at > since}


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _rollout(tmp_path: Path, server: ServerProcess, *args: str) -> subprocess.Popen[str]:
    """The real CLI, finding the server and admin token in the server's home, as a user's
    shell in that directory would."""
    return subprocess.Popen(
        meshpy_cmd("rollout", "payment", "--to", "v2", *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=server_env(server.home),
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 90) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"meshpy rollout did not finish; stderr:\n{err}") from None
    return proc.returncode, out, err


def _backends_or_none(server: ServerProcess) -> list[tuple[str, int | None]] | None:
    answer = server.client().get(ROUTE)
    if answer.status_code == 404:
        return None
    refs = answer.json()["spec"]["rules"][0]["backendRefs"]
    return [(ref["name"], ref.get("weight")) for ref in refs]


def _backends(server: ServerProcess) -> list[tuple[str, int | None]]:
    found = _backends_or_none(server)
    assert found is not None, "no HTTPRoute payment"
    return found


def test_a_healthy_v2_is_promoted_and_ctrl_c_rolls_back(
    tmp_path: Path, server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    with _mesh(start_sidecar) as load:
        _wait(lambda: _versions_seen(load, 0) == {"v1", "v2"}, "both versions answering")

        # Ctrl-C in the middle of the first step: back to v1 at once, exit 130.
        interrupted = _rollout(tmp_path, server, "--steps", "10,100", "--interval", "60s", *GATE)
        deadline = time.monotonic() + 30
        while _backends_or_none(server) != [("payment-v1", 90), ("payment-v2", 10)]:
            assert time.monotonic() < deadline, "the first step was never applied"
            time.sleep(0.1)
        interrupted.send_signal(signal.SIGINT)
        code, out, err = _finish(interrupted)
        assert code == 130, err
        assert out.startswith("payment: interrupted, rolled back to v1 at 10% of v2"), out
        assert _backends(server) == [("payment-v1", 1)]

        started = time.monotonic()
        proc = _rollout(tmp_path, server, "--steps", "20,50,100", "--interval", "2s", *GATE)
        code, out, err = _finish(proc)
        assert code == 0, f"stdout: {out}\nstderr: {err}"
        assert out.startswith("payment: promoted v2 (from v1) after 3 step(s)"), out
        for step in ("step 1/3: 20%", "step 2/3: 50%", "step 3/3: 100%"):
            assert step in err
        assert err.count(": ok: error rate 0%") == 3, err
        assert _backends(server) == [("payment-v2", 1)]

        # Every request goes to v2 now.
        settled = time.monotonic() + 1
        _wait(lambda: time.monotonic() > settled + 2, "a few seconds of traffic")
        assert _versions_seen(load, settled) == {"v2"}
    assert load.failures == [], load.failures[:5]
    assert load.ok > 40 * (time.monotonic() - started) * 0.5  # the load kept going


def test_a_v2_failing_one_request_in_ten_is_rolled_back(
    tmp_path: Path, server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    with _mesh(start_sidecar, "--fail-rate", "0.1") as load:
        _wait(lambda: _versions_seen(load, 0) == {"v1", "v2"}, "both versions answering")
        proc = _rollout(tmp_path, server, "--steps", "20,50,100", "--interval", "2s", *GATE)
        code, out, err = _finish(proc)
        assert code == 1, f"stdout: {out}\nstderr: {err}"
        assert out.startswith("payment: rolled back to v1 at "), out
        assert "error rate " in out
        assert "> 1%" in out
        assert "failed: error rate" in err
        assert "rolling back: every request of payment to v1" in err
        assert _backends(server) == [("payment-v1", 1)]

        settled = time.monotonic() + 1
        _wait(lambda: time.monotonic() > settled + 2, "a few seconds of traffic")
        assert _versions_seen(load, settled) == {"v1"}
        failed_late = [f for at, f in load.failures if at > settled]
        assert failed_late == []  # v1 alone: no more 500s
    assert any(f.startswith("500") for _, f in load.failures)  # v2 did fail while it served
