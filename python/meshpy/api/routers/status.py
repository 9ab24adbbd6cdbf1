"""``/api/v1/status``: the control plane's own state: its version, clock and database schema.

What ``meshpy check`` needs beyond the health routes: whether the registry schema is the
newest this server knows (a newer meshpy may have migrated a shared database under it),
and the server's time, to compare clocks with (certificates start only
``CLOCK_SKEW`` before they are issued).
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from meshpy.api.deps import AdminDep, StateDep
from meshpy.registry import migrations, repository

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["status"])


class DatabaseStatus(BaseModel):
    """The registry database and its schema."""

    dialect: str = Field(description="sqlite or postgresql.")
    schema_revision: str | None = Field(
        description="The database's schema (Alembic) revision; null for an empty database."
    )
    schema_head: str = Field(description="The newest schema revision this server knows.")
    schema_known: bool = Field(
        description="False when the schema is one this server does not know: a newer meshpy "
        "migrated the database."
    )


class ServerStatus(BaseModel):
    """The control plane's own state."""

    version: str = Field(description="The meshpy version the server runs.")
    time: datetime = Field(description="The server's clock as it answered (UTC).")
    revision: int = Field(description="The registry revision.")
    database: DatabaseStatus


def _read(session: Session) -> tuple[migrations.SchemaStatus, int]:
    return migrations.status(session.connection()), repository.current_revision(session)


@router.get("/status")
async def get_status(state: StateDep, _: AdminDep) -> ServerStatus:
    """The server's version and clock, the registry revision and the database schema."""
    from meshpy import __version__

    schema, revision = await state.store.read(_read)
    return ServerStatus(
        version=__version__,
        time=repository.utcnow(),
        revision=revision,
        database=DatabaseStatus(
            dialect=state.store.db.dialect,
            schema_revision=schema.current,
            schema_head=schema.head,
            schema_known=schema.known,
        ),
    )
