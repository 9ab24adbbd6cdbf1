"""The `identity` key of a proxy config file: checked, resolved against the file, read."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshpy.configfile import ConfigFileError, IdentityFiles, load, parse
from meshpy.dataplane import check_config

IDENTITY = "identity: {cert_chain: certs/a.pem, key: certs/a.key, roots: /etc/roots.pem}\n"


def test_identity_is_neither_bootstrap_nor_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "proxy.yaml"
    path.parent.mkdir()
    path.write_text("admin: 127.0.0.1:0\nclusters: []\n" + IDENTITY)
    loaded = load(path)
    assert loaded.bootstrap == {"admin": "127.0.0.1:0"}
    assert loaded.snapshot == {"clusters": []}
    assert loaded.identity == IdentityFiles(
        cert_chain=tmp_path / "conf" / "certs" / "a.pem",
        key=tmp_path / "conf" / "certs" / "a.key",
        roots=Path("/etc/roots.pem"),
    )
    assert parse("clusters: []\nidentity: null\n").identity is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("identity: [a]\n", "identity: expected a mapping with cert_chain, key and roots"),
        ("identity: {cert_chain: a, key: b}\n", "identity.roots: missing"),
        ("identity: {cert_chain: a, key: 3, roots: c}\n", "identity.key: must be a file path"),
        (
            "identity: {cert_chain: a, key: b, roots: c, ca: d}\n",
            "identity.ca: unknown field, expected cert_chain, key or roots",
        ),
    ],
)
def test_bad_identity_mappings_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        parse(text)
    assert str(info.value) == message


def test_read_names_the_file_that_failed(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_text("chain")
    (tmp_path / "roots.pem").write_text("roots")
    files = IdentityFiles.resolve(
        {"cert_chain": "a.pem", "key": "a.key", "roots": "roots.pem"}, tmp_path
    )
    with pytest.raises(ConfigFileError) as info:
        files.read()
    assert str(info.value) == f"identity.key: {tmp_path / 'a.key'}: No such file or directory"
    (tmp_path / "a.key").write_text("key")
    pem = files.read()
    assert (pem.cert_chain, pem.key, pem.roots) == ("chain", "key", "roots")


def test_a_checked_config_keeps_identity_out_of_the_snapshot() -> None:
    config = check_config(
        {"identity": {"cert_chain": "a", "key": "b", "roots": "c"}, "clusters": []}, Path("/x")
    )
    assert config.identity is not None
    assert "identity" not in config.snapshot
    assert config.identity.key == Path("/x/b")
