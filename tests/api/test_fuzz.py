"""Generated requests from the OpenAPI document (schemathesis): never a 5xx, errors are problems.

A bounded, derandomised number of examples per operation keeps this fast and repeatable.
One live server per backend serves every operation's examples, with the admin token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from meshpy.api import create_app
from meshpy.settings import Settings
from tests.api.live import LiveServer, start
from tests.dbs import BACKENDS, database

schema = schemathesis.openapi.from_dict(create_app(Settings(home=Path("/nonexistent"))).openapi())


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """One live server per backend for every generated case."""
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with database(request.param, tmp) as url:
        server = start(Settings(home=tmp / "home", db_url=url))
        try:
            server.register("cart")
            server.register("payment", version="v2")
            yield server
        finally:
            server.stop()


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors(case: schemathesis.Case, fuzz_server: LiveServer) -> None:
    if case.path == "/api/v1/revision":
        # A long-poll: answering only after its full wait (30 s by default) is not a bug.
        case.query = {**(case.query or {}), "wait": 0.1}
    if case.path == "/api/v1/tap":
        # A stream: it lasts as long as asked.
        case.query = {**(case.query or {}), "duration": "1s"}
    response = case.call(
        base_url=fuzz_server.url,
        headers={"Authorization": f"Bearer {fuzz_server.admin_token}"},
        timeout=15,
    )
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    if response.status_code >= 400:
        content_type = response.headers["content-type"]  # a list of values here
        assert content_type == ["application/problem+json"], response.text
