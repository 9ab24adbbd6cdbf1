"""``meshpy tap`` (a service's requests, live) and ``meshpy top`` (its busiest paths, live),
both from the control plane's ``GET /api/v1/tap`` stream."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import typer

from meshpy.cli._client import (
    SERVER_OPTION,
    TOKEN_OPTION,
    Api,
    check_names,
    problem_text,
    refuse,
    report,
)
from meshpy.cli._output import OUTPUT_OPTION, Format, table

if TYPE_CHECKING:
    from meshpy.tap import PathStats

__all__ = ["tap", "top"]

_MAX_RPS = 1000  # meshpy.tap.MAX_RPS, kept here so that --help imports nothing heavy
_MAX_DURATION_S = 600
_METHOD = re.compile(r"^[A-Z][A-Z-]{0,31}$")
_PATH = re.compile(r"^/[\x21-\x7e]*$")


def _duration_s(value: str, option: str) -> int:
    from meshpy.durations import parse_duration

    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError as exc:
        refuse(f"{option}: {exc}")
    if not 1 <= seconds <= _MAX_DURATION_S:
        refuse(f"{option}: {value!r} is not 1s to 10m")
    return int(seconds)


def _params(
    service: str,
    namespace: str,
    path: str | None,
    method: str | None,
    direction: str,
    max_rps: int,
    headers: bool,
    duration: str,
    *,
    bodies: bool = False,
) -> dict[str, str]:
    """The query of ``/api/v1/tap``; a bad argument exits 2 saying which and why."""
    check_names({"SERVICE": service, "--namespace": namespace})
    if path is not None and (not _PATH.match(path) or len(path) > 1024):
        refuse(f"--path: {path!r} is not a path prefix (it starts with '/', no spaces)")
    if method is not None:
        method = method.upper()
        if not _METHOD.match(method):
            refuse(f"--method: {method!r} is not an HTTP method")
    if direction not in ("inbound", "outbound", "both"):
        refuse(f"--direction: {direction!r} is not inbound, outbound or both")
    seconds = _duration_s(duration, "--duration")
    params = {
        "service": service,
        "namespace": namespace,
        "direction": direction,
        "max_rps": str(max_rps),
        "headers": "true" if headers else "false",
        "bodies": "true" if bodies else "false",
        "duration": f"{seconds}s",
    }
    if path is not None:
        params["path"] = path
    if method is not None:
        params["method"] = method
    return params


def _events(api: Api, params: dict[str, str], seconds: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The tap's events as they come; a question the server can't answer exits 2."""
    import httpx

    from meshpy.tap import GRACE_S, parse_sse

    headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
    # The server writes at least every 5 s; the whole tap ends after its duration.
    timeout = httpx.Timeout(15.0, connect=5.0)
    deadline = time.monotonic() + seconds + GRACE_S + 15.0
    try:
        with (
            httpx.Client(base_url=api.server, headers=headers, timeout=timeout) as client,
            client.stream("GET", "/api/v1/tap", params=params) as answer,
        ):
            if answer.status_code in (404, 422):
                answer.read()
                refuse(problem_text(answer, api.token is not None))
            if answer.status_code >= 400:
                answer.read()
                report(answer, api.token is not None)
            for event in parse_sse(answer.iter_lines()):
                yield event
                if time.monotonic() > deadline:
                    return
    except httpx.HTTPError as exc:
        typer.echo(f"error: the tap stream ended: {str(exc) or type(exc).__name__}", err=True)
        raise typer.Exit(1) from None


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}ms"


def _route(route: Any) -> str:
    if not isinstance(route, dict):
        return "-"
    match = route.get("match")
    return f"{route.get('vhost')}/{route.get('rule')}/{'-' if match is None else match}"


def request_line(event: dict[str, Any]) -> str:
    """One request on one line, ``key=value`` after the essentials; headers and bodies
    below it."""
    when = time.strftime("%H:%M:%S", time.localtime(float(event.get("time") or 0)))
    fraction = f"{float(event.get('time') or 0) % 1:.3f}"[1:]
    fields = [
        f"{when}{fraction}",
        f"{event.get('direction', '-'):<8}",
        str(event.get("method", "-")),
        f"{event.get('authority') or ''}{event.get('path', '')}",
        str(event.get("status", "-")),
        _ms(event.get("latency_ms")),
        f"src={event.get('source_identity') or '-'}",
        f"route={_route(event.get('route'))}",
        f"cluster={event.get('cluster') or '-'}",
        f"endpoint={event.get('endpoint') or '-'}",
        f"trace={event.get('trace_id') or '-'}",
        f"instance={event.get('instance') or '-'}",
    ]
    if event.get("error"):
        fields.append(f"error={event['error']}")
    lines = [" ".join(fields)]
    for name, value in event.get("headers") or []:
        lines.append(f"    {name}: {value}")
    for side in ("request", "response"):
        body = event.get(f"{side}_body")
        if isinstance(body, dict):
            cut = ", first 4 KiB" if body.get("truncated") else ""
            lines.append(
                f"    {side} body ({body.get('bytes', 0)} bytes{cut}): {body.get('text', '')!r}"
            )
    return "\n".join(lines)


def _summary(end: dict[str, Any]) -> str:
    return (
        f"{end.get('events', 0)} events; {end.get('limited', 0)} over the rate, "
        f"{end.get('dropped', 0)} dropped, {end.get('failed', 0)} instances failed"
    )


_NAMESPACE = typer.Option("default", "--namespace", "-n", metavar="NS", help="The namespace.")
_PATH_OPTION = typer.Option(None, "--path", metavar="P", help="Only paths under this prefix.")
_METHOD_OPTION = typer.Option(None, "--method", metavar="M", help="Only this method.")
_DIRECTION = typer.Option("both", "--direction", metavar="DIR", help="inbound, outbound or both.")


def tap(
    service: str = typer.Argument(..., metavar="SERVICE", help="The service to tap."),
    namespace: str = _NAMESPACE,
    path: str | None = _PATH_OPTION,
    method: str | None = _METHOD_OPTION,
    direction: str = _DIRECTION,
    max_rps: int = typer.Option(
        10, "--max-rps", min=1, max=_MAX_RPS, help="Events a second, at most, over all sidecars."
    ),
    headers: bool = typer.Option(
        False, "--headers", help="Show request headers (credentials always [redacted])."
    ),
    bodies: bool = typer.Option(
        False,
        "--bodies",
        help="Show the first 4 KiB of request and response bodies (not redacted: "
        "a body is shown as it is).",
    ),
    duration: str = typer.Option("1m", "--duration", "-d", help="How long: 1s to 10m."),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Show a service's requests as its sidecars serve and send them, live.

    One line per request: time, direction, method, authority and path, status, latency,
    the caller's verified identity, the route rule (vhost/rule/match), the cluster and
    endpoint it went to, and its trace id. Bodies are shown only with --bodies (their
    first 4 KiB). -o json prints each event as one JSON line. The totals (events, and
    those over the rate) go to stderr.
    """
    if output is Format.YAML:
        refuse("-o: a tap is a stream: table or json")
    params = _params(
        service, namespace, path, method, direction, max_rps, headers, duration, bodies=bodies
    )
    seconds = int(params["duration"][:-1])
    for kind, data in _events(Api(server, token), params, seconds):
        if kind == "request":
            if output is Format.JSON:
                typer.echo(json.dumps(data, separators=(",", ":")))
            else:
                typer.echo(request_line(data))
            sys.stdout.flush()
        elif kind == "instance":
            typer.echo(f"tapping instance {data.get('instance')} at {data.get('admin')}", err=True)
        elif kind == "error":
            typer.echo(f"warning: instance {data.get('instance')}: {data.get('reason')}", err=True)
        elif kind == "end":
            typer.echo(_summary(data), err=True)


def top_table(rows: list[PathStats], limit: int) -> str:
    """The busiest paths first: count, success rate and latency best/worst/last."""
    lines = [
        [
            row.method,
            row.path,
            row.count,
            f"{100 * row.success / row.count:.1f}%" if row.count else None,
            _ms(row.best_ms if row.count else None),
            _ms(row.worst_ms if row.count else None),
            _ms(row.last_ms if row.count else None),
        ]
        for row in rows[:limit]
    ]
    if not lines:
        return "no requests yet\n"
    return table(["METHOD", "PATH", "COUNT", "SUCCESS", "BEST", "WORST", "LAST"], lines)


def _ranked(rows: dict[tuple[str, str], PathStats]) -> list[PathStats]:
    return sorted(rows.values(), key=lambda r: (-r.count, r.path, r.method))


def _live(refresh: Callable[[], str], events: Iterator[tuple[str, dict[str, Any]]]) -> Any:
    """Shows ``refresh()`` on the terminal, redrawn as events come; the last ``end``."""
    from rich.live import Live
    from rich.text import Text

    end: dict[str, Any] = {}
    last = 0.0
    with Live(Text(refresh()), auto_refresh=False, transient=False) as live:
        try:
            for kind, data in events:
                if kind == "end":
                    end = data
                now = time.monotonic()
                if now - last >= 0.5 or kind == "end":
                    live.update(Text(refresh()), refresh=True)
                    last = now
        except KeyboardInterrupt:
            pass
        live.update(Text(refresh()), refresh=True)
    return end


def top(
    service: str = typer.Argument(..., metavar="SERVICE", help="The service whose paths to rank."),
    namespace: str = _NAMESPACE,
    path: str | None = _PATH_OPTION,
    method: str | None = _METHOD_OPTION,
    direction: str = typer.Option(
        "inbound", "--direction", metavar="DIR", help="inbound, outbound or both."
    ),
    max_rps: int = typer.Option(
        _MAX_RPS,
        "--max-rps",
        min=1,
        max=_MAX_RPS,
        help="Requests a second counted, at most (beyond, the counts are a sample).",
    ),
    duration: str = typer.Option("10s", "--duration", "-d", help="How long: 1s to 10m."),
    limit: int = typer.Option(20, "--limit", min=1, help="Paths shown, busiest first."),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """The busiest paths of a service, live: count, success rate, latency best/worst/last.

    On a terminal with -o table, the table is redrawn as requests come, until --duration
    or Ctrl-C. Otherwise (-o json, or not a terminal) one summary is printed after
    --duration. Built on the same stream as meshpy tap.
    """
    from meshpy.tap import summarise

    params = _params(service, namespace, path, method, direction, max_rps, False, duration)
    seconds = int(params["duration"][:-1])
    rows: dict[tuple[str, str], PathStats] = {}
    end: dict[str, Any] = {}

    live = output is Format.TABLE and sys.stdout.isatty()

    def counted() -> Iterator[tuple[str, dict[str, Any]]]:
        for kind, data in _events(Api(server, token), params, seconds):
            if kind == "request":
                summarise(rows, data)
            elif kind == "instance" and not live:
                typer.echo(
                    f"tapping instance {data.get('instance')} at {data.get('admin')}", err=True
                )
            elif kind == "error":
                typer.echo(
                    f"warning: instance {data.get('instance')}: {data.get('reason')}", err=True
                )
            yield kind, data

    if live:
        end = _live(lambda: top_table(_ranked(rows), limit), counted())
    else:
        for kind, data in counted():
            if kind == "end":
                end = data
    ranked = _ranked(rows)
    if output is Format.TABLE:
        if not sys.stdout.isatty():
            typer.echo(top_table(ranked, limit), nl=False)
        if end:
            typer.echo(_summary(end), err=True)
        return
    answer = {
        "service": service,
        "namespace": namespace,
        "duration_s": seconds,
        "events": end.get("events"),
        "limited": end.get("limited"),
        "dropped": end.get("dropped"),
        "paths": [row.as_dict() for row in ranked[:limit]],
    }
    if output is Format.JSON:
        typer.echo(json.dumps(answer, indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(answer, sort_keys=False, allow_unicode=True), nl=False)
