"""The committed schema and Python types are what the Rust config types generate."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from meshpy import proxyconfig
from meshpy.configfile import BOOTSTRAP_KEYS
from meshpy.dataplane import json_schema
from tests.meshpy_code import load_script

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "api" / "proxy-config.schema.json"
TYPES = ROOT / "python" / "meshpy" / "proxyconfig.py"


def generator() -> ModuleType:
    return load_script("proxyconfig")


def test_committed_schema_is_what_the_rust_types_derive() -> None:
    committed = json.loads(SCHEMA.read_text())
    assert committed == json_schema(), f"{SCHEMA.name} is stale: run `make schema`"


def test_schema_describes_every_field() -> None:
    schema = json_schema()
    for name, definition in schema["$defs"].items():
        for field, spec in definition.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"
    assert set(schema["properties"]) == {
        "admin",
        "workers",
        "max_connections",
        "access_log",
        "istio_metrics",
        "version",
        "listeners",
        "clusters",
        "identity",
        "tracing",
        "metrics",
    }
    assert schema["additionalProperties"] is False


def test_committed_types_are_what_the_schema_generates() -> None:
    wanted = generator().python_types(SCHEMA.read_text())
    assert TYPES.read_text() == wanted, f"{TYPES.name} is stale: run `make schema`"


def test_a_field_added_in_rust_makes_the_check_fail_until_regenerated(tmp_path: Path) -> None:
    """What a new field in a Rust config type does: the extension's schema gains it, the
    committed files no longer match, and regenerating them adds the field."""
    schema = json.loads(SCHEMA.read_text())
    schema["$defs"]["Listener"]["properties"]["trace_sampling"] = {
        "description": "Share of new traces recorded.",
        "type": "number",
    }
    grown = tmp_path / "grown.schema.json"
    grown.write_text(json.dumps(schema, indent=2) + "\n")
    types = tmp_path / "proxyconfig.py"
    types.write_text(TYPES.read_text())

    assert generator().main(["--check", "--schema", str(grown), "--types", str(types)]) == 1
    regenerated = generator().python_types(grown.read_text())
    assert "    trace_sampling: NotRequired[float]\n" in regenerated
    assert "trace_sampling" not in TYPES.read_text()


def test_bootstrap_and_snapshot_are_named_types() -> None:
    assert set(proxyconfig.Bootstrap.__annotations__) == {
        "admin",
        "workers",
        "max_connections",
        "access_log",
        "istio_metrics",
    }
    assert set(proxyconfig.Snapshot.__annotations__) == {
        "version",
        "listeners",
        "clusters",
        "tracing",
        "metrics",
    }
    assert tuple(proxyconfig.Bootstrap.__annotations__) == BOOTSTRAP_KEYS
