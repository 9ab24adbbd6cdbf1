"""Alembic migrations of the registry schema, shipped inside the package.

``upgrade(db)`` brings a database to the newest schema (``meshpy db upgrade``; the server
does it itself on SQLite). ``check(db)`` says whether a database is at the newest schema,
which the server requires of PostgreSQL before it starts; ``status(connection)`` says the
same on a connection already open (a running server's, for ``GET /api/v1/status``). The repository's
``alembic.ini`` points the ``alembic`` command here, for writing new revisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from meshpy.errors import MeshpyError
from meshpy.registry.db import Database

__all__ = [
    "SCRIPT_LOCATION",
    "SchemaError",
    "SchemaStatus",
    "alembic_config",
    "check",
    "head",
    "prepare",
    "status",
    "upgrade",
]

SCRIPT_LOCATION = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against this version of meshpy."""

    current: str | None
    """The database's Alembic revision; None for an empty database."""
    head: str
    """The newest revision this meshpy knows."""

    @property
    def up_to_date(self) -> bool:
        """Whether the database is at the newest schema."""
        return self.current == self.head

    @property
    def known(self) -> bool:
        """False when the database was migrated by a newer meshpy (or something else)."""
        return self.current is None or self.current in _revisions()


class SchemaError(MeshpyError):
    """The database's schema is not the one this meshpy runs on; ``str()`` is one line."""


def prepare(db: Database) -> SchemaStatus | None:
    """Make ``db`` ready for the server: upgrade SQLite, check PostgreSQL.

    Returns the status from before an upgrade it made, or None if there was none to make.
    PostgreSQL is shared and upgraded deliberately (``meshpy db upgrade``), so a schema
    that is behind raises SchemaError instead of being changed under other servers.
    """
    if db.dialect == "sqlite":
        status = check(db)
        if not status.known:
            raise SchemaError(_newer(status))
        if status.up_to_date:
            return None
        upgrade(db)
        return status
    status = check(db)
    if not status.known:
        raise SchemaError(_newer(status))
    if not status.up_to_date:
        current = status.current or "empty"
        msg = (
            f"the database schema is behind ({current}, this meshpy needs {status.head}): "
            "run `meshpy db upgrade --db URL` first"
        )
        raise SchemaError(msg)
    return None


def _newer(status: SchemaStatus) -> str:
    return (
        f"the database schema {status.current} is newer than this meshpy knows "
        f"(newest {status.head}): upgrade meshpy"
    )


def alembic_config() -> Config:
    """An Alembic config for the scripts in this package."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


def upgrade(db: Database) -> None:
    """Apply every migration the database lacks, in one transaction."""
    config = alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def check(db: Database) -> SchemaStatus:
    """Read the database's schema revision (raises SQLAlchemy errors if it is unreachable)."""
    with db.engine.connect() as connection:
        return status(connection)


def status(connection: Connection) -> SchemaStatus:
    """Read the schema revision on ``connection`` (raises SQLAlchemy errors as it fails)."""
    current = MigrationContext.configure(connection).get_current_revision()
    return SchemaStatus(current=current, head=head())


def head() -> str:
    """The newest schema revision this meshpy ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its scripts
        msg = "no migration scripts found"
        raise RuntimeError(msg)
    return head


def _revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
