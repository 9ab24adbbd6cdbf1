"""Registry databases for tests: a SQLite file, or a fresh schema in the test PostgreSQL.

The PostgreSQL URL comes from MESHPY_TEST_PG_URL (``make test-db`` starts the server and
``make test-python`` exports it). If that server cannot be reached, PostgreSQL tests
fail: they never skip.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

DEFAULT_PG_URL = "postgresql://meshpy:meshpy@127.0.0.1:5432/meshpy_test"
BACKENDS = ("sqlite", "postgresql")


def pg_url() -> str:
    """The test PostgreSQL server (libpq URL)."""
    return os.environ.get("MESHPY_TEST_PG_URL") or DEFAULT_PG_URL


def _connect(url: str) -> object:
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {url} is not reachable ({str(exc).strip()}); "
            "run `make test-db` (or set MESHPY_TEST_PG_URL)",
            pytrace=False,
        )


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A new, empty schema; yields a URL whose connections use it. Dropped afterwards."""
    import psycopg

    base = pg_url()
    name = f"t_{secrets.token_hex(6)}"
    conn = _connect(base)
    assert isinstance(conn, psycopg.Connection)
    with conn:
        conn.execute(f"CREATE SCHEMA {name}")
        separator = "&" if "?" in base else "?"
        try:
            yield f"{base}{separator}options={quote(f'-csearch_path={name}')}"
        finally:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@contextlib.contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty registry database of the given backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        with pg_schema() as url:
            yield url
