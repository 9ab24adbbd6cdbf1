"""``meshpy traces`` (search the control plane's trace store) and ``meshpy trace ID`` (one
trace as a waterfall)."""

from __future__ import annotations

import re

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, Api
from meshpy.cli._output import OUTPUT_OPTION, Format, emit

__all__ = ["list_traces", "show_trace"]

_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")


def _duration(value: str | None) -> str | None:
    if value is None:
        return None
    from meshpy.durations import parse_duration

    try:
        parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def list_traces(
    service: str | None = typer.Option(
        None, "--service", "-s", metavar="NAME", help="Traces with a span of this service."
    ),
    errors: bool = typer.Option(False, "--errors", help="Traces with a span in error."),
    slowest: int | None = typer.Option(
        None, "--slowest", min=1, max=500, metavar="N", help="The N longest traces."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="DURATION",
        callback=_duration,
        help="Traces with a span started this long ago at most, e.g. 10m.",
    ),
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="How many traces at most."),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """List traces, newest first: root span, start, duration, spans, error, services."""
    from meshpy.cli.waterfall import traces_table

    params: dict[str, str | int] = {"limit": limit}
    if service is not None:
        params["service"] = service
    if errors:
        params["status"] = "error"
    if slowest is not None:
        params.update(order="slowest", limit=slowest)
    if since is not None:
        params["since"] = since
    emit(Api(server, token).json("GET", "/api/v1/traces", params=params), output, traces_table)


def show_trace(
    trace_id: str = typer.Argument(..., metavar="TRACE_ID", help="32 hex digits."),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Draw one trace as a waterfall: its spans in tree order on one time scale."""
    from meshpy.cli.waterfall import waterfall_table

    if not _TRACE_ID.fullmatch(trace_id):
        raise typer.BadParameter("a trace ID is 32 hex digits", param_hint="TRACE_ID")
    trace = Api(server, token).json("GET", f"/api/v1/traces/{trace_id.lower()}")
    emit(trace, output, waterfall_table)
