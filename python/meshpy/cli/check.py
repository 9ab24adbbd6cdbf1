"""``meshpy check``: read what the checks need from the control plane, print their marks.

The decisions are ``meshpy.checks`` (pure); this module only asks the API and prints:
on a terminal in colour, else in plain words (``ok``, ``warn``, ``FAIL``), or as JSON
or YAML with ``-o``. Exit 1 when a check fails; warnings alone exit 0.
"""

from __future__ import annotations

import io
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, Api, UnreachableError, problem_text
from meshpy.cli._output import OUTPUT_OPTION, Format, emit

if TYPE_CHECKING:
    import httpx

    from meshpy import checks

__all__ = ["check", "read_facts", "report_text"]

T = TypeVar("T")

SETTLE_S = 2.0
"""How long sidecars behind on their config get to catch up before they count as behind:
a change reaches every sidecar within milliseconds, and a check run just after one must
not report it."""
_SETTLE_STEP_S = 0.5


def check(
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Check that the mesh works, each check with a fix when it fails.

    Control plane reachable and ready, admin token accepted, database schema migrated,
    CA valid (and for how long), every sidecar connected and on the latest config,
    sidecar certificates not near expiry, local clock in sync with the control plane's.
    Exits 1 when a check fails; warnings alone exit 0.
    """
    from meshpy.checks import failed, run_checks

    api = Api(server, token)
    results = run_checks(read_facts(api))
    data = {
        "server": api.server,
        "ok": not failed(results),
        "checks": [c.as_dict() for c in results],
    }
    emit(data, output, lambda d: report_text(d, terminal=sys.stdout.isatty()))
    if not data["ok"]:
        raise typer.Exit(1)


# --- reading ----------------------------------------------------------------------------


def read_facts(api: Api) -> checks.Facts:
    """Ask the control plane what the checks need; stop at the first answer that makes the
    rest pointless (none at all, or the admin token refused).

    The server's clock is read last: leases and certificates read before it are judged by
    a clock at least as late as their reading.
    """
    from meshpy import checks

    local_time = datetime.now(UTC)
    try:
        health = api.try_send("GET", "/healthz")
    except UnreachableError as exc:
        return checks.Facts(api.server, local_time, health=checks.Unavailable(str(exc)))
    if health.status_code != 200:
        reason = f"/healthz answered HTTP {health.status_code}: is it a meshpy control plane?"
        return checks.Facts(api.server, local_time, health=checks.Unavailable(reason))
    ready_revision = _read(api, "/readyz", lambda d: int(d["revision"]))
    sidecars = _settled_sidecars(api)
    if isinstance(sidecars, _Refused):
        return checks.Facts(
            api.server,
            local_time,
            ready_revision=ready_revision,
            admin=checks.Unavailable(sidecars.reason),
        )
    ca = _read(api, "/api/v1/identity/ca", _ca)
    sent_at = datetime.now(UTC)
    status_answer = _answer(api, "/api/v1/status")
    received_at = datetime.now(UTC)
    return checks.Facts(
        api.server,
        local_time,
        ready_revision=ready_revision,
        status=_parsed(status_answer, "/api/v1/status", _server_status),
        clock=_parsed(
            status_answer,
            "/api/v1/status",
            lambda d: checks.ClockReading(sent_at, received_at, _time(d["time"])),
        ),
        ca=ca,
        sidecars=sidecars,
    )


@dataclass(frozen=True)
class _Refused:
    """The admin token was refused (401 or 403): ``reason`` says why."""

    reason: str


def _answer(api: Api, path: str) -> Any:
    """The JSON of a 200 answer; else ``_Refused`` or ``Unavailable`` saying why."""
    from meshpy import checks

    try:
        response = api.try_send("GET", path)
    except UnreachableError as exc:
        return checks.Unavailable(f"no answer: {exc}")
    if response.status_code in (401, 403):
        return _Refused(problem_text(response, api.token is not None))
    if response.status_code != 200:
        return checks.Unavailable(_http_problem(response, api))
    try:
        return response.json()
    except ValueError:
        return checks.Unavailable(f"{path} answered something other than JSON")


def _http_problem(response: httpx.Response, api: Api) -> str:
    return f"HTTP {response.status_code}: {problem_text(response, api.token is not None)}"


def _parsed(answer: Any, path: str, parse: Callable[[Any], T]) -> T | checks.Unavailable:
    from meshpy import checks

    if isinstance(answer, checks.Unavailable):
        return answer
    if isinstance(answer, _Refused):
        return checks.Unavailable(answer.reason)
    try:
        return parse(answer)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return checks.Unavailable(f"unexpected answer from {path} ({type(exc).__name__}: {exc})")


def _read(api: Api, path: str, parse: Callable[[Any], T]) -> T | checks.Unavailable:
    return _parsed(_answer(api, path), path, parse)


def _settled_sidecars(api: Api) -> tuple[checks.Sidecar, ...] | checks.Unavailable | _Refused:
    """The sidecars, read again for up to ``SETTLE_S`` while one is behind without an error."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        answer = _answer(api, "/api/v1/proxies")
        if isinstance(answer, _Refused):
            return answer
        sidecars = _parsed(answer, "/api/v1/proxies", _sidecars)
        behind = isinstance(sidecars, tuple) and any(
            s.sync != "SYNCED" and s.error is None for s in sidecars
        )
        if not behind or time.monotonic() >= deadline:
            return sidecars
        time.sleep(_SETTLE_STEP_S)


# --- the API's answers as facts ---------------------------------------------------------


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _optional_time(text: str | None) -> datetime | None:
    return None if text is None else _time(text)


def _server_status(data: dict[str, Any]) -> checks.ServerStatus:
    from meshpy import checks

    database = data["database"]
    return checks.ServerStatus(
        version=str(data["version"]),
        dialect=str(database["dialect"]),
        schema_revision=database["schema_revision"],
        schema_head=str(database["schema_head"]),
        schema_known=bool(database["schema_known"]),
    )


def _ca(data: dict[str, Any]) -> checks.CertificateAuthority:
    from meshpy import checks

    roots = tuple(
        checks.CACertificate(
            role="root",
            generation=int(r["generation"]),
            not_before=_time(r["not_before"]),
            not_after=_time(r["not_after"]),
            state=r["state"],
        )
        for r in data["roots"]
    )
    inter = data["intermediate"]
    signer = int(inter["generation"])
    rotation = data["rotation"]
    return checks.CertificateAuthority(
        trust_domain=str(data["trust_domain"]),
        cert_ttl=timedelta(seconds=float(data["cert_ttl_s"])),
        roots=roots,
        intermediate=checks.CACertificate(
            role="intermediate",
            generation=signer,
            not_before=_time(inter["not_before"]),
            not_after=_time(inter["not_after"]),
        ),
        root_key_held=any(r["key_held"] for r in data["roots"] if r["generation"] == signer),
        signing_switch_at=(
            None if rotation["phase"] == "stable" else _optional_time(rotation["signing_switch_at"])
        ),
    )


def _sidecars(data: list[dict[str, Any]]) -> tuple[checks.Sidecar, ...]:
    from meshpy import checks

    return tuple(
        checks.Sidecar(
            namespace=str(p["namespace"]),
            service=str(p["service"]),
            instance=str(p["instance"]),
            state=p["state"],
            lease_expires_at=_optional_time(p["lease_expires_at"]),
            sync=p["status"],
            acked_version=p["acked_version"],
            current_version=int(p["current_version"]),
            error=p["error"],
            certificate_not_after=(
                _time(p["certificate"]["not_after"]) if p["certificate"] is not None else None
            ),
        )
        for p in data
    )


# --- printing ---------------------------------------------------------------------------

_PLAIN_MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
_TERMINAL_MARKS = {"ok": ("✔", "green"), "warn": ("‼", "yellow"), "fail": ("✘", "bold red")}


def report_text(data: dict[str, Any], *, terminal: bool) -> str:
    """The checks by area, a mark each with its details and fix under it, then a summary:
    in plain words, a line each, for a pipe or a file; in colour, wrapped to the width,
    on a terminal."""
    marks = [c["mark"] for c in data["checks"]]
    failures, warnings = marks.count("fail"), marks.count("warn")
    if not failures and not warnings:
        summary = "all checks passed"
    else:
        counted = [
            f"{n} {word}{'s' if n > 1 else ''}"
            for n, word in ((failures, "failure"), (warnings, "warning"))
            if n
        ]
        summary = f"{', '.join(counted)}: see the fixes above"
    if terminal:
        colour = "bold red" if failures else "yellow" if warnings else "green"
        return _coloured(data["checks"], summary, colour)
    lines = []
    for area, found in _by_area(data["checks"]):
        lines.append(area)
        for c in found:
            lines.append(f"  {_PLAIN_MARKS[c['mark']]}  {c['name']}: {c['message']}")
            lines.extend(f"        {detail}" for detail in c["details"])
            if c["fix"]:
                lines.append(f"        fix: {c['fix']}")
    return "\n".join([*lines, "", summary]) + "\n"


def _by_area(found: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    for c in found:
        if not groups or groups[-1][0] != c["area"]:
            groups.append((c["area"], []))
        groups[-1][1].append(c)
    return groups


def _coloured(found: list[dict[str, Any]], summary: str, colour: str) -> str:
    from rich.console import Console
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    out = io.StringIO()
    width = shutil.get_terminal_size((100, 24)).columns
    console = Console(file=out, width=width, force_terminal=True, highlight=False)
    for area, checks_of_area in _by_area(found):
        console.print(Text(area, style="bold"))
        for c in checks_of_area:
            mark, mark_colour = _TERMINAL_MARKS[c["mark"]]
            line = Table.grid(padding=(0, 1))  # wrapped text stays right of the mark
            line.add_row(Text(mark, style=mark_colour), f"{c['name']}: {c['message']}")
            console.print(Padding(line, (0, 0, 0, 2)))
            for detail in c["details"]:
                console.print(Padding(Text(detail, style="dim"), (0, 0, 0, 4)))
            if c["fix"]:
                console.print(Padding(Text.assemble(("fix: ", "bold"), c["fix"]), (0, 0, 0, 4)))
    console.print()
    console.print(Text(summary, style=colour))
    return "".join(f"{line.rstrip()}\n" for line in out.getvalue().splitlines())
