"""Engines and transactions for the registry: SQLite (one file, WAL) or PostgreSQL (psycopg).

SQLite connections get WAL, foreign keys, ``synchronous=FULL`` (an acknowledged write
survives a crash) and a busy timeout, and write transactions start with ``BEGIN
IMMEDIATE`` so concurrent writers queue on the lock instead of failing. PostgreSQL
connections get connect, statement and lock timeouts and TCP keepalives, so a database
outage turns into errors within seconds, and pooled connections are checked before use
so the server recovers by itself once the database is back.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "normalize_url", "psycopg_conninfo", "redact"]

_READ_ONLY = "meshpy_read_only"


def normalize_url(url: str) -> str:
    """Return ``url`` with PostgreSQL spelt for psycopg 3 (``postgresql+psycopg://``)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def redact(url: str) -> str:
    """``url`` with the password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def psycopg_conninfo(url: str) -> str:
    """The libpq URL psycopg takes for a ``postgresql+psycopg://`` SQLAlchemy URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One engine and its session factories; ``dispose()`` closes the pool."""

    def __init__(self, url: str, *, timeout_s: float = 4.0, pool_size: int = 16) -> None:
        self.url = normalize_url(url)
        self.timeout_s = timeout_s
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(parsed, timeout_s, pool_size)
        elif parsed.get_backend_name() == "postgresql":
            self.engine = _postgres_engine(parsed, timeout_s, pool_size)
        else:
            msg = f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
            raise ValueError(msg)
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Session]:
        """A session in one transaction: committed if the block returns, rolled back if not."""
        factory = self._writer if write else self._reader
        with factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _sqlite_engine(url: URL, timeout_s: float, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout_s,
        connect_args={"timeout": timeout_s, "check_same_thread": False},
    )
    busy_ms = math.ceil(timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below start transactions, not pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            f"busy_timeout={busy_ms}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: URL, timeout_s: float, pool_size: int) -> Engine:
    statement_ms = math.ceil(timeout_s * 1000)
    options = " ".join(
        [
            str(url.query.get("options", "")),
            f"-c statement_timeout={statement_ms}",
            f"-c lock_timeout={statement_ms}",
            f"-c idle_in_transaction_session_timeout={statement_ms * 4}",
        ]
    ).strip()
    connect_args: dict[str, Any] = {
        "connect_timeout": max(1, math.floor(timeout_s * 0.75)),
        "options": options,
        "application_name": "meshpy-server",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "tcp_user_timeout": statement_ms,
    }
    return create_engine(
        url.difference_update_query(["options"]),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout_s,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args=connect_args,
    )
