"""Alembic environment: migrates the connection it is handed, or the configured database.

``meshpy db upgrade`` and the server hand a connection in ``config.attributes``; the
``alembic`` command (run from the repository root) uses ``sqlalchemy.url`` from the
ini file or, when that is empty, the server settings (``MESHPY_DB_URL``/``MESHPY_HOME``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from meshpy.registry.db import Database
from meshpy.registry.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        from meshpy.settings import Settings

        url = Settings().database_url
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            _run(conn)
    finally:
        db.dispose()


_main()
