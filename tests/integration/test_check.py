"""`meshpy check` as a user runs it, against a real `meshpy server` and real sidecars.

A healthy mesh passes; a sidecar stuck on an old config, a sidecar gone silent, a
certificate that expires within a day, a database migrated by a newer meshpy and an
unreachable control plane each fail with their fix; bad input exits 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from meshpy.ca import certs
from meshpy.registry.db import Database
from tests.integration.conftest import FAST_LEASES, StartServer, StartSidecar
from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess, server_env
from tests.integration.sidecars import spawn_sidecar, wait_sidecar_ready

MESHPY = (sys.executable, "-m", "meshpy")


def meshpy_check(
    server: ServerProcess, *args: str, code: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `meshpy check` where the server's data directory is (URL and admin token found
    there, as for a user on the control plane's host), stdout a pipe: not a terminal."""
    done = subprocess.run(
        [*MESHPY, "check", *args],
        capture_output=True,
        text=True,
        env=server_env(server.home, **(env or {})),
        timeout=60,
        check=False,
    )
    assert done.returncode == code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def checks_of(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


@pytest.fixture
def server(start_server: StartServer) -> ServerProcess:
    return start_server(env=FAST_LEASES)


def _instance(sidecar: ProxyProcess) -> str:
    """The instance id a sidecar registered as (from its log)."""
    line = sidecar.wait_for_log(r"^meshpy sidecar: registered \S+ instance ", timeout=10)[-1]
    return line.rsplit(" ", 1)[-1].strip()


def _synced(
    server: ServerProcess, count: int, *, stale: int = 0, timeout: float = 20.0
) -> list[dict[str, object]]:
    """Until ``count`` proxies are SYNCED and healthy, and ``stale`` others healthy."""
    deadline = time.monotonic() + timeout
    while True:
        proxies = server.client().get("/api/v1/proxies").json()
        healthy = [p for p in proxies if p["state"] == "healthy"]
        synced = [p for p in healthy if p["status"] == "SYNCED"]
        if len(synced) == count and len(healthy) == len(proxies) == count + stale:
            return proxies
        if time.monotonic() > deadline:
            raise AssertionError(proxies)
        time.sleep(0.1)


def test_a_healthy_mesh_passes(server: ServerProcess, start_sidecar: StartSidecar) -> None:
    start_sidecar("cart")
    start_sidecar("payment")
    proxies = _synced(server, 2)
    done = meshpy_check(server, code=0)
    lines = done.stdout.splitlines()
    assert lines[0] == "control plane"
    assert lines[1] == f"  ok    reachable: meshpy {_version()} answers at {server.url}"
    assert "  ok    connected: 2 sidecars connected" in lines
    assert "  ok    on the latest config: 2 sidecars on the latest config" in lines
    assert [line for line in lines if line.startswith("  ") and not line.startswith("  ok")] == []
    assert lines[-1] == "all checks passed"
    assert "\x1b[" not in done.stdout  # not a terminal: no colours
    as_json = json.loads(meshpy_check(server, "-o", "json", code=0).stdout)
    assert as_json["ok"] is True
    assert as_json["server"] == server.url
    assert [c["mark"] for c in as_json["checks"]] == ["ok"] * 9
    by_name = {c["name"]: c for c in as_json["checks"]}
    assert by_name["not near expiry"]["message"].startswith(
        "the soonest sidecar certificate expires in 23h"
    )
    assert {p["certificate"] is not None for p in proxies} == {True}


def _version() -> str:
    from meshpy import __version__

    return __version__


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a listening socket of this test holds."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_sidecar_stuck_on_an_old_config_fails_with_its_fix(
    server: ServerProcess, start_sidecar: StartSidecar, taken_port: int
) -> None:
    # cart asks for a local port to the db service, which another process holds: once db
    # exists, every snapshot cart gets has a listener it cannot bind, and it keeps the old.
    cart = start_sidecar("cart", "--upstream", f"db={taken_port}")
    start_sidecar("payment")
    _synced(server, 2)
    cart_id = _instance(cart)
    start_sidecar("db")
    cart.wait_for_log(r"snapshot \d+ rejected: .*upstream", timeout=20)
    _synced(server, 2, stale=1)
    done = meshpy_check(server, code=1)
    lines = done.stdout.splitlines()
    headline = "  FAIL  on the latest config: 1 of 3 sidecars are not on the latest config"
    assert headline in lines, done.stdout
    failing = lines.index(headline)
    detail = lines[failing + 1]
    assert detail.startswith(f"        default/cart {cart_id}: rejected config version ")
    assert str(taken_port) in detail
    assert lines[failing + 2].startswith("        fix: the error says what its proxy refused")
    assert lines[-1].startswith("1 failure")
    found = checks_of(meshpy_check(server, "-o", "json", code=1))
    assert found["on the latest config"]["mark"] == "fail"
    assert found["connected"]["mark"] != "fail"


def test_a_sidecar_gone_silent_fails_connected_and_config(
    server: ServerProcess, start_sidecar: StartSidecar
) -> None:
    cart = start_sidecar("cart")
    start_sidecar("payment")
    _synced(server, 2)
    cart_id = _instance(cart)
    cart.send(signal.SIGSTOP)  # renews nothing, applies nothing
    try:
        start_sidecar("db")  # a change every sidecar's config follows
        deadline = time.monotonic() + 20
        while True:
            found = checks_of(meshpy_check(server, "-o", "json", code=1))
            if found["connected"]["mark"] == "fail" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert found["connected"]["mark"] == "fail", found
        lost, *_ = found["connected"]["details"]
        assert found["connected"]["message"] == "1 of 3 sidecars stopped renewing their lease"
        assert str(lost).startswith(f"default/cart {cart_id}: its lease ran out ")
        assert found["connected"]["fix"] == (
            "is the sidecar running and able to reach the control plane? see its log; it "
            "registers again by itself"
        )
        config = found["on the latest config"]
        assert config["mark"] == "fail"
        assert str(next(iter(config["details"]))).startswith(
            f"default/cart {cart_id}: runs config version "
        )
        assert str(config["fix"]).startswith("see the sidecar's log for why it takes no new config")
    finally:
        cart.send(signal.SIGCONT)


def test_a_certificate_expiring_within_a_day_fails(
    start_server: StartServer, tmp_path: Path
) -> None:
    # A CA whose intermediate (the user's) ends in two hours: every certificate it signs
    # ends then too, however long the certificate lifetime.
    home = tmp_path / "short-ca"
    home.mkdir()
    now = datetime.now(UTC)
    year_ago = now - timedelta(days=365)
    root_key, inter_key = certs.new_key(), certs.new_key()
    root = certs.make_root(root_key, "meshpy.local", generation=1, now=year_ago)
    inter = certs.make_intermediate(
        inter_key, root, root_key, "meshpy.local", generation=1, now=year_ago + timedelta(hours=2)
    )
    files = {
        "root.pem": certs.to_pem(root).encode(),
        "inter.pem": certs.to_pem(inter).encode(),
        "inter.key": certs.key_to_pem(inter_key),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    init = subprocess.run(
        [
            *MESHPY,
            "identity",
            "ca",
            "init",
            "--root-cert",
            str(tmp_path / "root.pem"),
            "--intermediate-cert",
            str(tmp_path / "inter.pem"),
            "--intermediate-key",
            str(tmp_path / "inter.key"),
        ],
        capture_output=True,
        text=True,
        env=server_env(home),
        timeout=60,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    server = start_server(home, env=FAST_LEASES)
    cart = spawn_sidecar(tmp_path, server, "cart")
    try:
        wait_sidecar_ready(cart)
        _synced(server, 1)
        cart_id = _instance(cart)
        done = meshpy_check(server, code=1)
    finally:
        cart.stop()
    lines = done.stdout.splitlines()
    ca = next(i for i, line in enumerate(lines) if "CA valid:" in line)
    assert lines[ca].startswith("  FAIL  CA valid: the intermediate (generation 1) expires in 1h5")
    assert "sooner than a certificate lifetime (1d)" in lines[ca]
    assert lines[ca + 1].startswith("        fix: make a new CA: `meshpy identity ca init --force`")
    near = lines.index(
        "  FAIL  not near expiry: 1 sidecar certificate with less than 4h48m left, a fifth "
        "of the 1d lifetime"
    )
    assert lines[near + 1].startswith(f"        default/cart {cart_id}: expires in 1h5")
    assert lines[near + 2].startswith("        fix: see the certificate authority check")
    assert lines[-1] == "2 failures: see the fixes above"


def test_a_database_migrated_by_a_newer_meshpy_fails(server: ServerProcess) -> None:
    db = Database(f"sqlite:///{server.home / 'meshpy.db'}")
    try:
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    finally:
        db.dispose()
    found = checks_of(meshpy_check(server, "-o", "json", code=1))
    schema = found["schema migrated"]
    assert schema["mark"] == "fail"
    assert str(schema["message"]).startswith("the schema ffffffffffff is newer than meshpy")
    assert schema["fix"] == (
        "upgrade meshpy on this server to the version that migrated the database"
    )


def test_an_unreachable_control_plane_fails_with_its_fix(server: ServerProcess) -> None:
    done = meshpy_check(server, "--server", "http://127.0.0.1:9", code=1)
    lines = done.stdout.splitlines()
    assert lines[0] == "control plane"
    assert lines[1].startswith("  FAIL  reachable: no answer from http://127.0.0.1:9: ")
    assert lines[2] == (
        "        fix: start it (`meshpy server`), or point --server or MESHPY_SERVER at it"
    )
    assert lines[3:] == ["", "1 failure: see the fixes above"]


def test_a_refused_token_fails_with_its_fix(server: ServerProcess) -> None:
    found = checks_of(meshpy_check(server, "--token", "mpa_wrong", "-o", "json", code=1))
    assert list(found) == ["reachable", "ready", "admin token accepted"]
    assert found["admin token accepted"]["message"] == "the token is not valid"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "xml"], "Invalid value for '--output' / '-o': 'xml' is not one of"),
        (["--server", "localhost:15010"], "'localhost:15010' is not an http:// or https:// URL"),
        (["--server", "http://[::1"], "'http://[::1' is not an http:// or https:// URL"),
        (["--sever", "http://127.0.0.1:9"], "No such option: --sever"),
        (["extra"], "Got unexpected extra argument(s) (extra)"),
    ],
)
def test_bad_input_exits_2(server: ServerProcess, args: list[str], message: str) -> None:
    done = meshpy_check(server, *args, code=2)
    assert message in " ".join(done.stderr.split()), done.stderr
    assert done.stdout == ""


def test_on_a_terminal_marks_are_coloured(server: ServerProcess) -> None:
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*MESHPY, "check"],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=subprocess.PIPE,
        env=server_env(server.home, COLUMNS="120"),
    )
    os.close(secondary)
    out = b""
    with contextlib.suppress(OSError):  # EIO once the child has closed its end
        while chunk := os.read(primary, 65536):
            out += chunk
    os.close(primary)
    assert proc.wait(30) == 0
    assert proc.stderr is not None
    proc.stderr.close()
    shown = out.decode()
    assert "\x1b[" in shown
    assert "✔" in shown
    assert "all checks passed" in shown
