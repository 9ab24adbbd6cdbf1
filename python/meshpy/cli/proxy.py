"""``meshpy proxy``: run a standalone data plane proxy from a config file."""

from __future__ import annotations

from typing import Any

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION
from meshpy.cli._output import OUTPUT_OPTION, Format

__all__ = ["app", "status_table"]

app = typer.Typer(
    help="Run a data plane proxy; see the config sync of the mesh's proxies.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.callback()
def _group() -> None:
    """Run a data plane proxy; see the config sync of the mesh's proxies."""


def status_table(proxies: Any) -> str:
    """The table of ``meshpy proxy status``."""
    from meshpy.cli._output import table

    rows = [
        (
            p["namespace"],
            p["service"],
            p["instance"],
            p["status"],
            "-" if p["acked_version"] is None else p["acked_version"],
            p["current_version"],
            p["error"] or "",
        )
        for p in proxies
    ]
    headers = ["NAMESPACE", "SERVICE", "INSTANCE", "STATUS", "ACKED", "CURRENT", "ERROR"]
    return table(headers, rows)


@app.command("status")
def status(
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Show every proxy as SYNCED, STALE (older or rejected config) or NOT SENT.

    Exits 1 when any proxy is not SYNCED.
    """
    from meshpy.cli._client import Api
    from meshpy.cli._output import emit

    proxies = Api(server, token).json("GET", "/api/v1/proxies")
    emit(proxies, output, status_table)
    if any(p["status"] != "SYNCED" for p in proxies):
        raise typer.Exit(1)


@app.command("run")
def run(
    config: str = typer.Option(
        ...,
        "--config",
        "-c",
        metavar="FILE",
        help="Proxy config, YAML or JSON: admin, workers, version, listeners, clusters.",
    ),
    drain_timeout: str = typer.Option(
        "10s",
        "--drain-timeout",
        metavar="DURATION",
        help="On SIGTERM/SIGINT, how long in-flight requests may finish: 10, 500ms, 10s.",
    ),
    addresses_json: bool = typer.Option(
        False,
        "--addresses-json",
        help="Also print the bound addresses as one JSON object per line on stdout.",
    ),
) -> None:
    """Serve the listeners in FILE until SIGTERM/SIGINT; SIGHUP re-reads FILE.

    A bad file exits 2 with the field named; on SIGHUP a bad file is reported and
    the running config keeps serving. The bound addresses go to stderr as
    "meshpy proxy: admin IP:PORT, NAME IP:PORT, ...".
    """
    from meshpy import proxyrun

    drain_s = _seconds(drain_timeout)
    code = proxyrun.run(config, drain_s=drain_s, addresses_json=addresses_json)
    raise typer.Exit(code)


def _seconds(text: str) -> float:
    """Read "10" as 10 seconds and "500ms", "10s", "1m" as durations."""
    from meshpy.durations import parse_seconds

    try:
        seconds = parse_seconds(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--drain-timeout") from exc
    if not 0 <= seconds < 1e9:
        msg = f"{text!r} is not a number of seconds >= 0"
        raise typer.BadParameter(msg, param_hint="--drain-timeout")
    return seconds
