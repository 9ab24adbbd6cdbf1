"""A config file is read as YAML or JSON and split into bootstrap and snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshpy.configfile import ConfigFileError, load, parse

YAML = """\
admin: 127.0.0.1:9901
workers: 2
version: 7
listeners:
  - {name: web, address: 127.0.0.1:8000, protocol: http, cluster: backend}
clusters:
  - name: backend
    endpoints: [127.0.0.1:9000]
    connect_timeout: 2s
"""


def test_yaml_is_split_into_bootstrap_and_snapshot() -> None:
    loaded = parse(YAML)
    assert loaded.bootstrap == {"admin": "127.0.0.1:9901", "workers": 2}
    assert set(loaded.snapshot) == {"version", "listeners", "clusters"}
    assert json.loads(loaded.bootstrap_json()) == loaded.bootstrap
    snapshot = json.loads(loaded.snapshot_json())
    assert snapshot["clusters"][0]["endpoints"] == ["127.0.0.1:9000"]
    assert snapshot["clusters"][0]["connect_timeout"] == "2s"


def test_json_file_by_suffix_and_by_content(tmp_path: Path) -> None:
    doc = {"workers": 1, "listeners": [], "clusters": []}
    for name in ("proxy.json", "proxy.conf"):
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        assert load(path).bootstrap == {"workers": 1}


def test_bootstrap_only_file_gives_empty_snapshot() -> None:
    loaded = parse("admin: 127.0.0.1:0\n")
    assert loaded.snapshot == {}
    assert loaded.snapshot_json() == "{}"


@pytest.mark.parametrize(
    ("text", "as_json", "message"),
    [
        ("", False, "got nothing"),
        ("- a\n- b\n", False, "got list"),
        ("listeners: [\n", False, "line 2"),
        ("a: 1\na: 2\n", False, "line 2, column 1: duplicate key 'a'"),
        ('{"a": 1, "a": 2}', True, "duplicate key 'a'"),
        ('{"a": ', True, "line 1, column 7"),
        ("1: x\n", False, "top-level keys must be strings"),
    ],
)
def test_parse_errors_are_one_line(text: str, as_json: bool, message: str) -> None:
    with pytest.raises(ConfigFileError, match=message) as info:
        parse(text, as_json=as_json)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="No such file or directory"):
        load(tmp_path / "nope.yaml")


def test_yaml_keeps_addresses_and_durations_as_strings() -> None:
    loaded = parse("clusters: [{name: b, endpoints: [127.0.0.1:9000], connect_timeout: 250ms}]\n")
    cluster = loaded.snapshot["clusters"][0]
    assert cluster["endpoints"] == ["127.0.0.1:9000"]
    assert cluster["connect_timeout"] == "250ms"
