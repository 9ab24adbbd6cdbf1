"""Real `meshpy server` processes: concurrent writes, restarts, PostgreSQL schema checks,
several servers on one database, and a database outage."""

from __future__ import annotations

import contextlib
import queue
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from meshpy.registry import migrations
from tests.dbs import BACKENDS, database, pg_schema, pg_url
from tests.integration.conftest import StartServer
from tests.integration.relay import Relay
from tests.integration.serverproc import ServerProcess, server_env

HEAD = migrations.head()
"""The schema revision a new database is upgraded to."""

WRITES = 200
WORKERS = 32


def _route(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "cart"}],
            "rules": [{"backendRefs": [{"name": "cart", "port": 80}]}],
        },
    }


def _instances(server: ServerProcess, service: str) -> list[dict[str, Any]]:
    response = server.client().get(f"/api/v1/namespaces/default/services/{service}")
    assert response.status_code == 200, response.text
    endpoints: list[dict[str, Any]] = response.json()["endpoints"]
    return endpoints


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_writes_are_all_kept_across_a_restart(
    backend: str, start_server: StartServer, tmp_path: Path
) -> None:
    with database(backend, tmp_path) as url:
        db_url = url if backend == "postgresql" else None
        if db_url:
            _db_upgrade(tmp_path / "home", db_url)
        server = start_server(tmp_path / "home", db_url=db_url)
        token = server.client().post("/api/v1/tokens", json={"service": "cart"}).json()["token"]
        idle: queue.Queue[httpx.Client] = queue.Queue()
        for _ in range(WORKERS):
            idle.put(httpx.Client(base_url=server.url, timeout=30))

        def call(method: str, path: str, bearer: str, body: dict[str, Any]) -> httpx.Response:
            client = idle.get()
            try:
                headers = {"Authorization": f"Bearer {bearer}"}
                return client.request(method, path, json=body, headers=headers)
            finally:
                idle.put(client)

        def register(i: int) -> tuple[int, str]:
            body = {"address": f"10.0.{i // 250}.{i % 250 + 1}", "inbound_port": 15006}
            path = "/api/v1/namespaces/default/services/cart/instances"
            response = call("POST", path, token, body)
            return response.status_code, response.json().get("id", response.text)

        def put_route(i: int) -> tuple[int, str]:
            path = f"/api/v1/namespaces/default/httproutes/r{i}"
            response = call("PUT", path, server.admin_token, _route(f"r{i}"))
            return response.status_code, response.text

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            # Both kinds of write at once: registrations and routes interleave.
            registrations = pool.map(register, range(WRITES))
            routes = pool.map(put_route, range(WRITES))
            registered, written = list(registrations), list(routes)
        while not idle.empty():
            idle.get().close()

        assert [code for code, _ in registered] == [201] * WRITES, registered[:3]
        assert [code for code, _ in written] == [201] * WRITES, written[:3]
        ids = {instance_id for _, instance_id in registered}
        assert len(ids) == WRITES

        def check(server: ServerProcess) -> None:
            assert {e["id"] for e in _instances(server, "cart")} == ids
            items = server.client().get("/api/v1/namespaces/default/httproutes").json()["items"]
            assert sorted(d["metadata"]["name"] for d in items) == sorted(
                f"r{i}" for i in range(WRITES)
            )
            assert {d["metadata"]["generation"] for d in items} == {1}

        check(server)
        assert server.stop() == 0
        check(start_server(tmp_path / "home", db_url=db_url))


def _db_upgrade(home: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshpy", "db", "upgrade", "--db", url],
        env=server_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_postgres_schema_behind_refuses_to_start(start_server: StartServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with pg_schema() as url:
        refused = start_server(home, db_url=url, ready=False)
        assert refused.wait(30) == 1
        assert refused.log().splitlines()[-1] == (
            "meshpy server: error: the database schema is behind (empty, this meshpy needs "
            f"{HEAD}): run `meshpy db upgrade --db URL` first"
        )
        upgraded = _db_upgrade(home, url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert upgraded.stderr.endswith(f"schema upgraded from empty to {HEAD}\n")
        assert "meshpy:***@" in upgraded.stderr  # the password is not shown
        again = _db_upgrade(home, url)
        assert again.stderr.endswith(f"schema already at {HEAD}\n")
        server = start_server(home, db_url=url)
        assert server.client().get("/readyz").json()["status"] == "ready"


def test_unreachable_postgres_is_one_line(start_server: StartServer, tmp_path: Path) -> None:
    with socket_without_server() as port:
        url = f"postgresql://meshpy:meshpy@127.0.0.1:{port}/meshpy_test"
        refused = start_server(tmp_path / "home", db_url=url, ready=False)
        assert refused.wait(30) == 1
        last = refused.log().splitlines()[-1]
        assert last.startswith(
            "meshpy server: error: cannot use the database "
            f"postgresql://meshpy:***@127.0.0.1:{port}/meshpy_test: connection failed: "
        )
        assert last.endswith("Connection refused")


class socket_without_server:  # noqa: N801 (used as a context manager, like a function)
    """A port on 127.0.0.1 where nothing listens (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


@contextlib.contextmanager
def _two_servers(
    start_server: StartServer, tmp_path: Path
) -> Iterator[tuple[str, ServerProcess, ServerProcess]]:
    """Two servers on one fresh PostgreSQL schema, sharing an admin token."""
    token = f"mpa_{secrets.token_urlsafe(32)}"
    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        home.mkdir()
        (home / "admin-token").write_text(token + "\n")
    with pg_schema() as url:
        _db_upgrade(homes[0], url)
        a, b = (start_server(home, db_url=url) for home in homes)
        yield token, a, b


def test_two_servers_on_one_postgres_see_each_others_changes(
    start_server: StartServer, tmp_path: Path
) -> None:
    with _two_servers(start_server, tmp_path) as (token, a, b):
        for _ in range(3):
            revision = b.client().get("/api/v1/revision").json()["revision"]
            result: dict[str, Any] = {}

            def watch(
                b: ServerProcess = b, revision: int = revision, result: dict[str, Any] = result
            ) -> None:
                with httpx.Client(
                    base_url=b.url, headers={"Authorization": f"Bearer {token}"}
                ) as c:
                    response = c.get(f"/api/v1/revision?newer_than={revision}&wait=10", timeout=20)
                result["seen_at"] = time.monotonic()
                result["body"] = response.json()

            watcher = threading.Thread(target=watch)
            watcher.start()
            time.sleep(0.3)  # the long-poll is waiting on b
            response = a.client().put(
                f"/api/v1/namespaces/default/httproutes/r{revision}", json=_route(f"r{revision}")
            )
            written_at = time.monotonic()
            assert response.status_code == 201
            watcher.join(15)
            assert result["body"]["changed"] is True
            assert result["body"]["revision"] > revision
            assert result["seen_at"] - written_at < 1.0
        names = [
            d["metadata"]["name"] for d in b.client().get("/api/v1/httproutes").json()["items"]
        ]
        assert len(names) == 3


def test_a_route_applied_on_one_server_reaches_a_config_watcher_of_another(
    start_server: StartServer, tmp_path: Path
) -> None:
    with _two_servers(start_server, tmp_path) as (token, a, b):
        registered = b.client().post(
            "/api/v1/namespaces/default/services/cart/instances",
            json={"address": "127.0.0.1", "inbound_port": 15006},
        )
        assert registered.status_code == 201, registered.text
        config = f"/api/v1/proxies/{registered.json()['id']}/config"
        etag = b.client().get(config).headers["etag"]
        for i in range(3):
            result: dict[str, Any] = {}

            def watch(etag: str = etag, result: dict[str, Any] = result) -> None:
                with httpx.Client(
                    base_url=b.url, headers={"Authorization": f"Bearer {token}"}
                ) as c:
                    response = c.get(
                        f"{config}?wait=10s", headers={"If-None-Match": etag}, timeout=20
                    )
                result["seen_at"] = time.monotonic()
                result["response"] = response

            watcher = threading.Thread(target=watch)
            watcher.start()
            time.sleep(0.3)  # the long-poll is waiting on b
            # Each route adds a rule of its own, so cart's sidecars get new content.
            route = _route(f"r{i}")
            route["spec"]["rules"][0]["matches"] = [
                {"headers": [{"name": "x-round", "value": str(i)}]}
            ]
            response = a.client().put(f"/api/v1/namespaces/default/httproutes/r{i}", json=route)
            written_at = time.monotonic()
            assert response.status_code == 201, response.text
            watcher.join(15)
            got: httpx.Response = result["response"]
            assert got.status_code == 200, got.text
            assert got.headers["etag"] != etag
            etag = got.headers["etag"]
            assert result["seen_at"] - written_at < 1.0


@pytest.mark.slow
def test_database_outage_gives_503_then_recovers(start_server: StartServer, tmp_path: Path) -> None:
    target = urlsplit(pg_url())
    relay = Relay((target.hostname or "127.0.0.1", target.port or 5432))
    try:
        with pg_schema() as url:
            home = tmp_path / "home"
            _db_upgrade(home, url)
            relayed = url.replace(
                f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{relay.port}"
            )
            server = start_server(home, db_url=relayed)
            client = server.client()
            write = lambda i: client.put(  # noqa: E731
                f"/api/v1/namespaces/default/httproutes/r{i}", json=_route(f"r{i}")
            )
            assert write(0).status_code == 201

            for mode in (relay.down, relay.stall):
                mode()
                for i in range(1, 3):
                    start = time.monotonic()
                    response = write(i)
                    elapsed = time.monotonic() - start
                    assert response.status_code == 503, response.text
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.headers["retry-after"] == "1"
                    assert response.json()["title"] == "Service unavailable"
                    assert elapsed < 5.0, (mode.__name__, elapsed)
                assert client.get("/readyz").status_code == 503
                assert client.get("/healthz").status_code == 200
                relay.up()
                deadline = time.monotonic() + 15
                while write(10).status_code not in (200, 201):
                    assert time.monotonic() < deadline, f"no recovery after {mode.__name__}"
                    time.sleep(0.2)
                assert client.get("/readyz").status_code == 200
            assert write(11).status_code == 201
            assert client.get("/api/v1/namespaces/default/httproutes/r0").status_code == 200
    finally:
        relay.close()
