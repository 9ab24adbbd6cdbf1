"""The committed OpenAPI document is the one the app generates; every error is a problem."""

from __future__ import annotations

import json
from pathlib import Path

from meshpy.api.__main__ import openapi_json

OPENAPI = Path(__file__).resolve().parents[2] / "api" / "openapi.json"


def test_committed_openapi_is_up_to_date() -> None:
    assert OPENAPI.read_text() == openapi_json(), f"{OPENAPI.name} is stale: run `make openapi`"


def test_every_operation_documents_problems_and_a_unique_id() -> None:
    document = json.loads(openapi_json())
    ids = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            problem = operation["responses"]["4XX"]["content"]
            assert "application/problem+json" in problem, (method, path)
    assert len(ids) == len(set(ids))
    assert "/api/v1/namespaces/{namespace}/httproutes/{name}" in document["paths"]
