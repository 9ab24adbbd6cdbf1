"""``meshpy db``: manage the registry database."""

from __future__ import annotations

from pathlib import Path

import typer

from meshpy.cli._client import fail, narrate

__all__ = ["app"]

app = typer.Typer(help="Manage the registry database.", no_args_is_help=True, rich_markup_mode=None)


@app.callback()
def _group() -> None:
    """Manage the registry database."""


@app.command("upgrade")
def upgrade(
    db: str = typer.Option(
        None,
        "--db",
        metavar="URL",
        help="Database [default: MESHPY_DB_URL or sqlite in the data directory].",
    ),
    data_dir: Path = typer.Option(
        None,
        "--data-dir",
        metavar="DIR",
        help="Data directory [default: MESHPY_HOME or ./.meshpy].",
    ),
) -> None:
    """Bring the registry schema up to date (idempotent)."""
    from sqlalchemy import exc as sa_exc

    from meshpy.cli.server import server_settings
    from meshpy.registry import migrations
    from meshpy.registry.db import Database, redact

    settings = server_settings(db_url=db, home=data_dir)
    url = settings.database_url
    if not settings.db_url:
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    database = Database(url, timeout_s=settings.db_timeout, pool_size=1)
    try:
        before = migrations.check(database)
        if not before.known:
            fail(f"the database schema {before.current} is newer than this meshpy knows")
        migrations.upgrade(database)
        after = migrations.check(database)
    except sa_exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [repr(exc)]
        fail(f"cannot use the database {redact(url)}: {reason[0]}")
    finally:
        database.dispose()
    if before.current == after.current:
        narrate(f"{redact(url)}: schema already at {after.current}")
    else:
        narrate(
            f"{redact(url)}: schema upgraded from {before.current or 'empty'} to {after.current}"
        )
