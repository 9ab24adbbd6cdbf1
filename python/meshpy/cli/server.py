"""``meshpy server``: run the control plane (REST API, registry, lease reaper)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from meshpy.settings import Settings

__all__ = ["server", "server_settings"]


def server(
    listen: str = typer.Option(
        None,
        "--listen",
        metavar="HOST:PORT",
        help="Where the REST API listens [default: MESHPY_LISTEN or 127.0.0.1:15010]; "
        "port 0 picks a free one.",
    ),
    db: str = typer.Option(
        None,
        "--db",
        metavar="URL",
        help="Registry database [default: MESHPY_DB_URL or sqlite in the data directory], "
        "e.g. postgresql://user:password@host/meshpy.",
    ),
    data_dir: Path = typer.Option(
        None,
        "--data-dir",
        metavar="DIR",
        help="Data directory: SQLite file, admin-token, server-url [default: MESHPY_HOME "
        "or ./.meshpy].",
    ),
    ready_file: Path = typer.Option(
        None,
        "--ready-file",
        metavar="FILE",
        help='Once listening, write {"url": ..., "pid": ...} there as JSON, whole at once '
        "(removed on exit): how a program that starts the server learns its URL.",
    ),
) -> None:
    """Run the control plane until SIGTERM/SIGINT.

    Prints the URL and where the admin token file is on stderr. SQLite databases are
    migrated on start; a PostgreSQL schema that is behind refuses to start (run
    `meshpy db upgrade --db URL`).
    """
    from meshpy.api.server import serve

    settings = server_settings(listen=listen, db_url=db, home=data_dir)
    raise typer.Exit(serve(settings, ready_file))


def server_settings(**overrides: object) -> Settings:
    """Settings from the environment, with the flags given on the command line on top."""
    from pydantic import ValidationError

    from meshpy.settings import Settings

    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise typer.BadParameter(f"{where}: {error['msg']}") from None
