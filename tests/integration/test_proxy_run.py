"""`meshpy proxy run` as a process: bad files, SIGHUP reloads, SIGTERM drains, exit codes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from typing import Any

import httpx
import pytest

from tests.integration.proxyproc import meshpy_cmd, proxy_config


def _wait_until_refused(address: tuple[str, int], timeout: float = 3.0) -> None:
    """Wait until nothing accepts connections on ``address`` any more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(address, timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.02)
    pytest.fail(f"{address} still accepts connections")


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"clusters": [{"name": "backend", "lb": "random"}]}, "clusters[0].lb: unknown variant"),
        ({"clusters": [{"name": "other"}]}, "listeners[0].cluster: "),
        (
            {"clusters": [{"name": "backend", "endpoints": ["localhost:80"]}]},
            "clusters[0].endpoints[0]: ",
        ),
        ({"workers": 0}, "workers: "),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_config_exits_2_naming_the_field(
    start_proxy, patch: dict[str, Any], expected: str
) -> None:
    proxy = start_proxy({**proxy_config(["127.0.0.1:9"]), **patch}, ready=False)
    assert proxy.wait(10) == 2
    lines = proxy.log().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: proxy.yaml: "), lines
    assert expected in lines[0], lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listeners: [\n", "error: proxy.yaml: line 2, column 1: "),
        ("- just\n- a list\n", "error: proxy.yaml: expected a mapping at the top level"),
        ("a: 1\na: 2\n", "error: proxy.yaml: line 2, column 1: duplicate key 'a'"),
    ],
)
def test_unparsable_file_exits_2(start_proxy, text: str, expected: str) -> None:
    proxy = start_proxy(text, ready=False)
    assert proxy.wait(10) == 2
    assert proxy.log().startswith(expected), proxy.log()


def test_missing_file_exits_2(tmp_path) -> None:
    done = subprocess.run(
        meshpy_cmd("proxy", "run", "--config", "absent.yaml"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "error: absent.yaml: No such file or directory\n"


def test_address_in_use_exits_1_naming_the_listener(start_proxy) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "{}:{}".format(*taken.getsockname())
        config = proxy_config([], listener={"address": address})
        proxy = start_proxy(config, ready=False)
        assert proxy.wait(10) == 1
    log = proxy.log()
    assert log.startswith("error: proxy.yaml: "), log
    assert "web" in log
    assert address in log


def test_json_config_and_admin_endpoints(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address], version=7), name="proxy.json")
    assert set(proxy.addresses) == {"admin", "web"}
    assert httpx.get(proxy.url("/"), timeout=5).status_code == 200
    admin = f"http://{proxy.addresses['admin']}"
    assert httpx.get(f"{admin}/ready", timeout=5).status_code == 200
    stats = httpx.get(f"{admin}/stats", timeout=5).json()
    assert stats["version"] == 7
    assert "meshpy proxy: applied version 7" in proxy.log()


def test_addresses_json_on_stdout(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address]), args=("--addresses-json",))
    first_line = proxy.out_path.read_text().splitlines()[0]
    assert json.loads(first_line) == proxy.addresses


def test_bad_file_on_sighup_keeps_the_old_config(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address]))
    assert httpx.get(proxy.url("/before"), timeout=5).status_code == 200

    bad = proxy_config([backend.address], cluster={"lb": "random"})
    proxy.reload(bad)
    proxy.wait_for_log(r"^error: proxy\.yaml: clusters\[0\]\.lb: .*still serving version 1")
    proxy.reload("listeners: [\n")
    proxy.wait_for_log(r"^error: proxy\.yaml: line .*still serving version 1")

    assert httpx.get(proxy.url("/after"), timeout=5).status_code == 200
    assert backend.count == 2
    stats = httpx.get(f"http://{proxy.addresses['admin']}/stats", timeout=5).json()
    assert stats["version"] == 1
    assert proxy.proc.poll() is None


def test_bootstrap_change_on_reload_asks_for_a_restart(http_backend, start_proxy) -> None:
    old, new = http_backend("old"), http_backend("new")
    proxy = start_proxy(proxy_config([old.address]))
    proxy.reload(proxy_config([new.address], workers=2))
    proxy.wait_for_log(r"^warning: proxy\.yaml: workers changed: restart the proxy to apply$")
    proxy.wait_for_log(r"^meshpy proxy: applied version 2$")
    assert httpx.get(proxy.url("/"), timeout=5).json()["backend"] == "new"


def test_reload_adds_and_removes_listeners(http_backend, start_proxy) -> None:
    backend = http_backend("b1")
    config = proxy_config([backend.address])
    proxy = start_proxy(config)
    web = proxy.addresses["web"]

    api = {**config["listeners"][0], "name": "api"}
    proxy.reload({**config, "listeners": [*config["listeners"], api]})
    proxy.wait_for_log(r"^meshpy proxy: applied version 2$")
    lines = proxy.wait_for_log(r"^meshpy proxy: admin .*, api ", count=1)
    assert f"web {web}" in lines[-1], "an unchanged port-0 listener keeps its port"
    api_address = lines[-1].split("api ")[1].split(",")[0]
    assert httpx.get(f"http://{api_address}/", timeout=5).status_code == 200

    proxy.reload(config)
    proxy.wait_for_log(r"^meshpy proxy: applied version 3$")
    host, port = api_address.rsplit(":", 1)
    _wait_until_refused((host, int(port)))
    assert httpx.get(proxy.url("/"), timeout=5).status_code == 200


class _Hammer:
    """Threads sending requests until stopped; counts failures and where answers came from."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.errors: list[str] = []
        self.last_backend: dict[int, str] = {}
        self.threads = [
            threading.Thread(target=self._run, args=(i, i == 0), daemon=True) for i in range(3)
        ]

    def __enter__(self) -> _Hammer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _run(self, index: int, fresh_connections: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=0 if fresh_connections else 1)
        with httpx.Client(timeout=5, limits=limits) as client:
            while not self.stop.is_set():
                try:
                    response = client.get(self.url)
                    ok = response.status_code == 200
                    detail = f"{response.status_code} {response.text[:80]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, repr(exc)
                with self.lock:
                    self.sent += 1
                    if ok:
                        self.last_backend[index] = response.json()["backend"]
                    else:
                        self.errors.append(detail)


@pytest.mark.alone
@pytest.mark.slow
def test_sighup_reload_under_load_drops_nothing(http_backend, start_proxy) -> None:
    blue, green = http_backend("blue"), http_backend("green")
    proxy = start_proxy(proxy_config([blue.address]))
    with _Hammer(proxy.url("/load")) as hammer:
        for i, backend in enumerate([green, blue, green, blue, green], start=2):
            time.sleep(0.3)
            proxy.reload(proxy_config([backend.address]))
            proxy.wait_for_log(rf"^meshpy proxy: applied version {i}$")
        green_before = green.count
        time.sleep(0.5)
    assert hammer.errors == [], f"{len(hammer.errors)} of {hammer.sent}: {hammer.errors[:5]}"
    assert hammer.sent > 50
    assert blue.count > 0
    assert green.count > green_before, "traffic moved to green after the last reload"
    assert set(hammer.last_backend.values()) == {"green"}
    assert proxy.proc.poll() is None


@pytest.mark.slow
def test_sigterm_drains_an_in_flight_request(http_backend, start_proxy) -> None:
    backend = http_backend("slow")
    proxy = start_proxy(proxy_config([backend.address]), args=("--drain-timeout", "5s"))
    result: dict[str, Any] = {}

    def slow_request() -> None:
        try:
            response = httpx.get(proxy.url("/slow?s=1.5"), timeout=10)
            result["status"], result["body"] = response.status_code, response.json()
        except httpx.HTTPError as exc:
            result["error"] = repr(exc)

    client = threading.Thread(target=slow_request)
    client.start()
    assert backend.slow_started.wait(5)
    started = time.monotonic()
    proxy.send(signal.SIGTERM)
    proxy.wait_for_log(r"^meshpy proxy: draining for up to 5s$")
    _wait_until_refused(proxy.host_port())
    client.join(10)
    assert result.get("status") == 200, result
    assert result["body"]["path"] == "/slow?s=1.5"
    assert proxy.wait(10) == 0
    assert time.monotonic() - started < 5, "exited once drained, not at the deadline"
    assert proxy.log().splitlines()[-1] == "meshpy proxy: stopped"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_signals_exit_0(http_backend, start_proxy, sig: signal.Signals) -> None:
    backend = http_backend("b1")
    proxy = start_proxy(proxy_config([backend.address]))
    proxy.send(sig)
    assert proxy.wait(10) == 0
    assert "Traceback" not in proxy.log()
