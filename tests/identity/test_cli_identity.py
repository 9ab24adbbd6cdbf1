"""`meshpy identity`: ca init (offline), ca show, ca rotate and inspect, with exact output."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from meshpy.cli import app
from tests.api.live import LiveServer
from tests.identity.conftest import CERTIFICATES
from tests.identity.pki import FakeClock, certificates, ec_key, key_pem, make_csr

CART = "spiffe://meshpy.local/ns/default/sa/cart"


def _run(*args: str, server: LiveServer | None = None, code: int = 0, home: Path) -> Result:
    env = {"MESHPY_HOME": str(home), "MESHPY_TRUST_DOMAIN": "meshpy.local"}
    if server is not None:
        env |= {"MESHPY_SERVER": server.url, "MESHPY_TOKEN": server.admin_token}
    result = CliRunner().invoke(app, list(args), env=env, terminal_width=200)
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result


def test_ca_show_and_rotate(server: LiveServer, tmp_path: Path) -> None:
    ca = server.admin.get("/api/v1/identity/ca").json()
    root, inter = ca["roots"][0], ca["intermediate"]
    shown = _run("identity", "ca", "show", server=server, home=tmp_path)
    assert shown.stdout == (
        "Trust domain:    meshpy.local\n"
        "Leaf lifetime:   24h\n"
        "Rotation:        stable\n"
        "Roots (trust bundle):\n"
        "  GENERATION   STATE    NOT-AFTER              KEY    FINGERPRINT-SHA256\n"
        f"  1            active   {root['not_after']}   held   {root['fingerprint_sha256']}\n"
        "Signing intermediate:\n"
        f"  GENERATION   {'SUBJECT':<{len(inter['subject'])}}   {'SERIAL':<32}   NOT-AFTER\n"
        f"  1            {inter['subject']}   {inter['serial']}   {inter['not_after']}\n"
    )
    as_json = _run("identity", "ca", "show", "-o", "json", server=server, home=tmp_path)
    assert json.loads(as_json.stdout) == ca
    as_yaml = _run("identity", "ca", "show", "-o", "yaml", server=server, home=tmp_path)
    assert yaml.safe_load(as_yaml.stdout)["trust_domain"] == "meshpy.local"

    rotated = _run("identity", "ca", "rotate", server=server, home=tmp_path)
    rotation = server.admin.get("/api/v1/identity/ca").json()["rotation"]
    assert rotated.stderr == (
        f"rotation started: signing moves to the new intermediate at "
        f"{rotation['signing_switch_at']}; the old root leaves the bundle at "
        f"{rotation['old_root_removed_at']}\n"
    )
    assert (
        f"Rotation:        trust-new-root (started {rotation['started_at']}; signing moves at "
        f"{rotation['signing_switch_at']}; the old root leaves at "
        f"{rotation['old_root_removed_at']})\n"
    ) in rotated.stdout
    lines = rotated.stdout.splitlines()
    assert lines[5].split()[:2] == ["1", "active"]
    assert lines[6].split()[:2] == ["2", "next"]
    again = _run("identity", "ca", "rotate", server=server, home=tmp_path, code=1)
    assert again.stderr.startswith("error: a rotation is under way (trust-new-root)")


def test_inspect_shows_the_latest_certificate_of_an_instance(
    server: LiveServer, clock: FakeClock, tmp_path: Path
) -> None:
    token = server.join_token("cart")
    instance = server.register("cart")["id"]
    serials = []
    for _ in range(2):
        clock.advance(5)
        csr, _key = make_csr([CART])
        response = server.client(token).post(CERTIFICATES, json={"csr": csr, "instance": instance})
        assert response.status_code == 201, response.text
        serials.append(response.json()["serial"])
    record = server.admin.get(CERTIFICATES, params={"instance": instance}).json()["items"][0]
    assert record["serial"] == serials[1]
    leaf, inter = record["chain"]
    shown = _run("identity", "inspect", instance, server=server, home=tmp_path)
    out = shown.stdout
    assert out.startswith(
        f"Instance:    {instance}\n"
        f"Identity:    {CART}\n"
        "Service:     default/cart\n"
        f"Serial:      {record['serial']}\n"
        f"Issued:      {record['issued_at']}\n"
        f"Not before:  {record['not_before']}\n"
        f"Not after:   {record['not_after']}\n"
        "Chain:\n"
    )
    rows = out.splitlines()[-3:]
    assert rows[0].split() == ["#", "SUBJECT", "ISSUER", "SERIAL", "NOT-AFTER"]
    cells = [[c.strip() for c in row.strip().split("   ") if c.strip()] for row in rows]
    # The leaf's subject is empty.
    assert cells[1] == ["0", "-", leaf["issuer"], leaf["serial"], leaf["not_after"]]
    assert cells[2] == ["1", inter["subject"], inter["issuer"], inter["serial"], inter["not_after"]]
    as_json = _run("identity", "inspect", instance, "-o", "json", server=server, home=tmp_path)
    assert json.loads(as_json.stdout) == record

    other = server.register("cart")["id"]
    missing = _run("identity", "inspect", other, server=server, home=tmp_path, code=1)
    assert missing.stderr == f"error: no certificate was issued to instance {other}\n"
    bad = _run("identity", "inspect", "nope", server=server, home=tmp_path, code=1)
    assert "instance:" in bad.stderr


def test_ca_init_offline(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = _run("identity", "ca", "init", home=home)
    assert made.stdout == ""
    assert made.stderr.startswith(f"certificate authority for meshpy.local in {home}/ca\n")
    assert "  new root          " in made.stderr
    for path in (home / "ca").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    assert stat.S_IMODE(os.stat(home / "ca").st_mode) == 0o700
    refused = _run("identity", "ca", "init", home=home, code=1)
    assert refused.stderr == (
        f"error: a CA already exists in {home}/ca (generation 1, trust domain meshpy.local): "
        "pass --force to replace it\n"
    )
    root = home / "ca" / "g1" / "root.crt"
    root_key = home / "ca" / "g1" / "root.key"

    # The user's own root and key (here: the one just made, copied elsewhere).
    other = tmp_path / "other"
    mine, mine_key = tmp_path / "root.pem", tmp_path / "root.key"
    mine.write_bytes(root.read_bytes())
    mine_key.write_bytes(root_key.read_bytes())
    imported = _run(
        "identity", "ca", "init", "--root-cert", str(mine), "--root-key", str(mine_key), home=other
    )
    assert "  your root         " in imported.stderr
    assert "  new intermediate  " in imported.stderr
    (copied,) = certificates((other / "ca" / "g1" / "root.crt").read_text())
    assert copied == certificates(root.read_text())[0]

    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_bytes(key_pem(ec_key()))
    mismatched = _run(
        "identity",
        "ca",
        "init",
        "--root-cert",
        str(mine),
        "--root-key",
        str(wrong_key),
        "--data-dir",
        str(tmp_path / "third"),
        home=tmp_path / "unused",
        code=1,
    )
    assert mismatched.stderr == (
        f"error: {wrong_key} (for {mine}): the private key does not match the certificate's "
        "public key\n"
    )
    assert not (tmp_path / "third" / "ca" / "ca.json").exists()
    bad_domain = _run(
        "identity", "ca", "init", "--trust-domain", "Not/Valid", home=tmp_path / "x", code=2
    )
    assert "invalid trust domain 'Not/Valid'" in bad_domain.stderr


@pytest.mark.parametrize("argv", [["identity", "--help"], ["identity", "ca", "init", "--help"]])
def test_identity_help_imports_nothing_heavy(argv: list[str]) -> None:
    check = (
        "import contextlib, io, sys\n"
        "from meshpy.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "    try:\n"
        f"        app({argv!r}, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'Usage' in out.getvalue(), out.getvalue()\n"
        "heavy = {'pydantic', 'httpx', 'fastapi', 'sqlalchemy', 'cryptography'}\n"
        "heavy &= set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, capture_output=True, timeout=30)
