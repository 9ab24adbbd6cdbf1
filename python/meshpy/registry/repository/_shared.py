"""What the registry's queries share: the clock, the revision and its lock, SQL helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from meshpy.registry.models import (
    Instance,
    Resource,
    Revision,
    Service,
)

CHANGES_CHANNEL = "meshpy_changes"
"""PostgreSQL NOTIFY channel; the payload is the new revision."""

JOIN_TOKEN_PREFIX = "mpj_"
"""Join tokens read ``mpj_<id>.<secret>``."""

_REVISION_ID = 1
_LOCKED = "meshpy.changes_locked"
_BUMPED = "meshpy.revision"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, as the registry stores it."""
    return datetime.now(UTC)


def current_revision(session: Session) -> int:
    """The global revision: it grows with every committed change."""
    return session.execute(select(Revision.value).where(Revision.id == _REVISION_ID)).scalar_one()


def lock_changes(session: Session) -> None:
    """Serialise this transaction with every other change (idempotent within a transaction)."""
    transaction = session.get_transaction()
    if session.info.get(_LOCKED) is transaction:
        return
    if _dialect(session) == "postgresql":
        session.execute(select(Revision.value).where(Revision.id == _REVISION_ID).with_for_update())
    session.info[_LOCKED] = transaction


def bump_revision(session: Session) -> int:
    """Count a change: increment the revision once per transaction and return it.

    On PostgreSQL this also NOTIFYs ``meshpy_changes``, delivered when the transaction
    commits, so other servers on the same database learn of it.
    """
    transaction = session.get_transaction()
    bumped = session.info.get(_BUMPED)
    if bumped is not None and bumped[0] is transaction:
        return int(bumped[1])
    lock_changes(session)
    value = session.execute(
        update(Revision)
        .where(Revision.id == _REVISION_ID)
        .values(value=Revision.value + 1)
        .returning(Revision.value)
    ).scalar_one()
    if _dialect(session) == "postgresql":
        session.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANGES_CHANNEL, "payload": str(value)},
        )
    session.info[_BUMPED] = (transaction, value)
    return int(value)


def committed_revision(session: Session) -> int | None:
    """The revision this session's transaction bumped to, if it changed anything."""
    bumped = session.info.get(_BUMPED)
    return None if bumped is None else int(bumped[1])


def service_keys(session: Session) -> set[tuple[str, str]]:
    """Every (namespace, name) a backendRef may name: registered and version services."""
    names = session.execute(select(Service.namespace, Service.name))
    keys: set[tuple[str, str]] = {(ns, name) for ns, name in names}
    versions = select(Instance.namespace, Instance.service, Instance.version).where(
        Instance.version.is_not(None)
    )
    for ns, svc, version in session.execute(versions.distinct()):
        keys.add((ns, f"{svc}-{version}"))
    return keys


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _affected(result: Any) -> bool:
    return bool(result.rowcount)


def _insert_ignore(
    session: Session,
    model: type[Service] | type[Resource],
    values: dict[str, Any],
    *,
    now: datetime,
) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True if the row was inserted."""
    insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    statement = insert(model).values(created_at=now, **values).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg reports -1 ("unknown") for this statement.
    return session.execute(statement.returning(model.created_at)).first() is not None
