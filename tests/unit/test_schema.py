"""The committed JSON Schema is the one the models generate."""

from __future__ import annotations

import json
from pathlib import Path

from meshpy.dataplane import json_schema

SCHEMA = Path(__file__).resolve().parents[2] / "api" / "proxy-config.schema.json"


def test_committed_schema_is_up_to_date() -> None:
    committed = json.loads(SCHEMA.read_text())
    assert committed == json_schema(), f"{SCHEMA.name} is stale: run `make schema`"


def test_schema_describes_every_field() -> None:
    schema = json_schema()
    for name, definition in schema["$defs"].items():
        for field, spec in definition["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"
    assert set(schema["properties"]) == {
        "admin",
        "workers",
        "max_connections",
        "version",
        "listeners",
        "clusters",
        "identity",
    }
    assert schema["additionalProperties"] is False
