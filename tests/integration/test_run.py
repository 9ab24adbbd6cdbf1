"""`meshpy run`: apps supervised by their sidecars, with a real control plane.

Apps are tests/integration/meshapp.py: they answer with their service, version and pid,
and call other services by name through their sidecar.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from meshpy.sidecar.events import read_events
from meshpy.sidecar.runner import free_port
from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess
from tests.integration.sidecars import APP, Load, join_token

_APP_PID = re.compile(r"meshpy sidecar: app started: pid (\d+)")


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


def _endpoints(server: ServerProcess, service: str) -> dict[str, str]:
    """Instance id -> state, from the registry."""
    answer = server.client().get(f"/api/v1/namespaces/default/services/{service}")
    if answer.status_code == 404:
        return {}
    return {e["id"]: e["state"] for e in answer.json()["endpoints"]}


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _wait_healthy(server: ServerProcess, service: str, instance: str) -> None:
    _wait(lambda: _endpoints(server, service).get(instance) == "healthy", 30, f"{instance} healthy")


def _instance(sidecar: ProxyProcess) -> str:
    [line] = sidecar.wait_for_log(r"meshpy sidecar: registered ")
    return line.rsplit(" ", 1)[1]


def _app_pids(sidecar: ProxyProcess) -> list[int]:
    return [int(pid) for pid in _APP_PID.findall(sidecar.log())]


def _get(sidecar: ProxyProcess, host: str, path: str = "/") -> httpx.Response:
    """A request from ``sidecar``'s app: to its outbound listener, for ``host``."""
    with httpx.Client(timeout=10) as client:
        return client.get(f"http://{sidecar.addresses['outbound']}{path}", headers={"host": host})


def _wait_routed(client_sidecar: ProxyProcess, host: str, count: int = 1) -> None:
    """Until ``client_sidecar`` reaches ``count`` distinct app pids of ``host``."""
    seen: set[int] = set()

    def reached() -> bool:
        answer = _get(client_sidecar, host)
        if answer.status_code == 200:
            seen.add(answer.json()["pid"])
        return len(seen) >= count

    _wait(reached, 30, f"{count} instance(s) of {host} reachable")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_apps_call_each_other_by_name(start_sidecar: StartSidecar) -> None:
    payment = start_sidecar("payment", "--version", "v2", app=APP)
    cart = start_sidecar("cart", app=APP)
    _wait_routed(cart, "payment")
    # The cart app itself calls http://payment/charge; its HTTP_PROXY is its sidecar.
    cart_port = _app_port(cart)
    with httpx.Client(timeout=10) as client:
        answer = client.get(f"http://127.0.0.1:{cart_port}/call/payment/charge")
    assert answer.status_code == 200, answer.text
    got = answer.json()["body"]
    assert (got["service"], got["version"], got["path"]) == ("payment", "v2", "/charge")
    assert got["client_id"] == "spiffe://meshpy.local/ns/default/sa/cart"
    assert got["pid"] == _app_pids(payment)[-1]


def _app_port(sidecar: ProxyProcess) -> int:
    """The app's port: the local-app endpoint in the sidecar's /stats."""
    stats = httpx.get(f"http://{sidecar.addresses['admin']}/stats", timeout=5).json()
    [endpoint] = stats["clusters"]["local-app"]["endpoints"]
    return int(endpoint["address"].rsplit(":", 1)[1])


def test_a_killed_app_is_restarted_and_gets_no_traffic_meanwhile(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    # An app that takes 2 s to listen: after its restart the instance stays unhealthy
    # long enough to see that it gets no traffic meanwhile.
    slow = ("sh", "-c", f"sleep 2; exec {' '.join(APP)}")
    first = start_sidecar("payment", app=slow, name="payment-1")
    second = start_sidecar("payment", app=APP, name="payment-2")
    cart = start_sidecar("cart")
    _wait_routed(cart, "payment", count=2)
    victim = _instance(first)
    [old_pid] = _app_pids(first)  # `exec`: the shell's pid becomes the app's
    with Load(f"http://{cart.addresses['outbound']}/", host="payment", rate=100) as load:
        time.sleep(1)
        killed = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        _wait(lambda: _endpoints(server, "payment")[victim] == "unhealthy", 10, "unhealthy")
        marked = time.monotonic()
        _wait(lambda: len(_app_pids(first)) == 2, 10, "the app restarted")
        _wait(lambda: _endpoints(server, "payment")[victim] == "healthy", 15, "healthy again")
        back = time.monotonic()
        time.sleep(1.5)
    new_pid = _app_pids(first)[-1]
    assert new_pid != old_pid
    assert _alive(new_pid)
    # Once the registry said unhealthy (plus the time for cart's sidecar to hear it) and
    # until it said healthy again, every request went to the other instance...
    meanwhile = [body["pid"] for at, body in load.answers if marked + 0.5 < at < back - 0.5]
    assert meanwhile
    assert set(meanwhile) == set(_app_pids(second))
    # ...so the only failures are the requests already on their way to the dead app.
    assert all(killed <= at < marked + 0.5 for at, _ in load.failures), load.failures
    # Afterwards the restarted app gets its share again.
    assert new_pid in {body["pid"] for at, body in load.answers if at > back}


@pytest.mark.alone
def test_rolling_restart_under_load_fails_no_request(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    replicas = [start_sidecar("payment", app=APP, name=f"payment-{i}") for i in range(2)]
    cart = start_sidecar("cart")
    _wait_routed(cart, "payment", count=2)
    with Load(f"http://{cart.addresses['outbound']}/", host="payment", rate=200) as load:
        time.sleep(1)
        for i, old in enumerate(list(replicas)):
            old.send(signal.SIGTERM)
            assert old.wait(30) == 0
            assert "meshpy sidecar: stopped" in old.log()
            new = start_sidecar("payment", app=APP, name=f"payment-{i}-new")
            _wait_healthy(server, "payment", _instance(new))
            time.sleep(1)
        time.sleep(1)
    assert load.failures == [], load.failures[:10]
    # Paced at 200 req/s; on two busy cores the client itself may lag a little.
    assert load.rate_achieved > 160, load.rate_achieved


def test_sigterm_stops_the_app_and_leaves_nothing(start_sidecar: StartSidecar) -> None:
    payment = start_sidecar("payment", app=APP)
    [pid] = _app_pids(payment)
    payment.send(signal.SIGTERM)
    assert payment.wait(30) == 0
    assert not _alive(pid)
    lines = payment.log().splitlines()
    order = [line for line in lines if "draining" in line or "stopped" in line]
    assert order == ["meshpy sidecar: draining for up to 10s", "meshpy sidecar: stopped"]


@pytest.mark.alone
def test_a_sidecar_restarted_while_the_control_plane_is_down_serves_from_saved_state(
    tmp_path: Path, server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("payment", app=APP)
    state = str(tmp_path / "cart-state")
    token = join_token(server, "cart")
    cart = start_sidecar("cart", "--state-dir", state, token=token)
    _wait_routed(cart, "payment")
    outbound = cart.addresses["outbound"]
    assert server.stop() == 0
    cart.send(signal.SIGTERM)
    assert cart.wait(30) == 0
    again = start_sidecar("cart", "--state-dir", state, name="cart-again", token=token)
    assert "serving the saved config" in again.log()
    assert again.addresses["outbound"] == outbound
    answer = _get(again, "payment", "/after-restart")
    assert answer.status_code == 200
    assert answer.json()["path"] == "/after-restart"


@pytest.mark.alone
def test_control_plane_down_for_30s_under_load_fails_no_request(
    start_server: StartServer, server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("payment", app=APP, name="payment-1")
    start_sidecar("payment", app=APP, name="payment-2")
    cart = start_sidecar("cart")
    _wait_routed(cart, "payment", count=2)
    port = server.url.rsplit(":", 1)[1]
    with Load(f"http://{cart.addresses['outbound']}/", host="payment", rate=100) as load:
        time.sleep(1)
        server.stop(signal.SIGKILL)
        time.sleep(30)
        back = start_server(server.home, args=("--listen", f"127.0.0.1:{port}"), env=FAST_LEASES)
        time.sleep(5)
    assert load.failures == [], load.failures[:10]
    assert load.ok > 2500
    # The sidecars found the control plane again by themselves.
    statuses = back.client().get("/api/v1/proxies").json()
    assert {p["service"] for p in statuses} == {"payment", "cart"}


def test_a_tcp_service_through_a_local_upstream_port(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    start_sidecar("echo", "--protocol", "tcp", app=(*APP, "echo"))
    port = free_port("127.0.0.1")
    cart = start_sidecar("cart", "--upstream", f"echo={port}")
    services = {
        s["name"]: s["protocol"] for s in server.client().get("/api/v1/services").json()["items"]
    }
    assert services["echo"] == "tcp"

    def echoed() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"ping over mTLS\n")
                return sock.recv(64) == b"ping over mTLS\n"
        except OSError:
            return False

    _wait(echoed, 30, "an echo through the upstream port")
    stats = httpx.get(f"http://{cart.addresses['admin']}/stats", timeout=5).json()
    assert stats["listeners"][f"upstream-{port}"]["protocol"] == "tcp"
    assert stats["clusters"]["echo.default"]["tls"] is not None


def test_with_restart_never_the_sidecar_leaves_with_its_app(start_sidecar: StartSidecar) -> None:
    quitter = ("sh", "-c", "sleep 1; exit 3")
    sidecar = start_sidecar("batch", "--restart", "never", app=quitter, ready=False)
    assert sidecar.wait(30) == 3
    log = sidecar.log()
    assert "app exited with 3; not restarting (--restart never)" in log
    assert log.rstrip().endswith("meshpy sidecar: stopped")


def test_the_sidecar_reports_its_events_as_json_lines(
    start_sidecar: StartSidecar, tmp_path: Path
) -> None:
    events_file = tmp_path / "events.jsonl"
    quitter = ("sh", "-c", "sleep 1; exit 3")
    sidecar = start_sidecar(
        "batch", "--restart", "never", "--events", str(events_file), app=quitter, ready=False
    )
    assert sidecar.wait(30) == 3
    events = read_events(events_file)
    names = [e["event"] for e in events]
    assert names[-3:] == ["app_exited", "draining", "stopped"], names
    [registered] = [e for e in events if e["event"] == "registered"]
    assert registered["service"] == "batch"
    assert registered["instance"]
    # Addresses are reported as they change: the admin port first, the listeners
    # once the config has arrived.
    addresses = [e["addresses"] for e in events if e["event"] == "addresses"]
    assert "admin" in addresses[0]
    assert set(addresses[-1]) >= {"admin", "outbound"}, addresses
    assert events[-3] == {"event": "app_exited", "code": 3, "restarting": False}
