"""``meshpy stat`` (golden metrics per service) and ``meshpy edges`` (who calls whom, over
mTLS or not), from the control plane's ``GET /api/v1/stats``."""

from __future__ import annotations

from typing import Any

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
from meshpy.cli._output import OUTPUT_OPTION, Format, emit, table

__all__ = ["edges", "stat"]

_NAMESPACE = typer.Option(
    None, "--namespace", "-n", metavar="NS", help="Only this namespace (default: all)."
)


def _window(value: str) -> str:
    from meshpy.durations import parse_duration

    try:
        parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _ask(api: Api, params: dict[str, str]) -> Any:
    """The stats answer; a question the server can't answer exits 2 with its reason."""
    response = api.send("GET", "/api/v1/stats", params=params)
    if response.status_code in (404, 422):
        refuse(problem_text(response, api.token is not None))
    if response.status_code >= 400:
        report(response, api.token is not None)
    return response.json()


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value * 1000:.1f}ms"


def _rps(value: float) -> str:
    return f"{value:.1f}"


def stats_table(answer: dict[str, Any]) -> str:
    """One row per service version (or, with ``--to``, per calling version)."""
    rows = []
    for row in answer["rows"]:
        subject = row["source"] or row["destination"]
        meshed = row["meshed"]
        latency = row["latency_s"]
        rows.append(
            [
                subject["namespace"],
                subject["service"],
                subject["version"],
                f"{meshed['ready']}/{meshed['total']}" if meshed else None,
                _percent(row["success_rate"]),
                _rps(row["rps"]),
                _ms(latency["p50"]),
                _ms(latency["p95"]),
                _ms(latency["p99"]),
                row["tcp"]["open_connections"],
            ]
        )
    if not rows:
        return f"no traffic in the last {answer['window_s']:g}s\n"
    headers = ["NAMESPACE", "NAME", "VERSION", "MESHED", "SUCCESS", "RPS"]
    return table([*headers, "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN"], rows)


def stat(
    service: str | None = typer.Argument(
        None, metavar="[SERVICE]", help="One service (default: every service with traffic)."
    ),
    version: str | None = typer.Option(None, "--version", metavar="V", help="Only this version."),
    source: str | None = typer.Option(
        None, "--from", metavar="SVC", help="Only requests from this service."
    ),
    destination: str | None = typer.Option(
        None,
        "--to",
        metavar="SVC",
        help="SERVICE's requests to this one, as its sidecars saw them.",
    ),
    window: str = typer.Option(
        "1m", "--time-window", "-t", callback=_window, help="10s to 1h, e.g. 30s, 5m."
    ),
    namespace: str | None = _NAMESPACE,
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Success rate, requests per second and latency percentiles of each service version.

    Without --to, the numbers are what the service's own sidecars served (inbound). With
    --to, what SERVICE sent to that service.
    """
    if destination is not None and service is None:
        refuse("--to needs a SERVICE whose requests to count")
    if version is not None and service is None:
        refuse("--version needs a SERVICE")
    check_names(
        {
            "SERVICE": service,
            "--version": version,
            "--from": source,
            "--to": destination,
            "--namespace": namespace,
        }
    )
    params = {"window": window, "by": "service"}
    for name, value in (
        ("namespace", namespace),
        ("service", service),
        ("version", version),
        ("from", source),
        ("to", destination),
    ):
        if value is not None:
            params[name] = value
    emit(_ask(Api(server, token), params), output, stats_table)


def edges_table(answer: dict[str, Any]) -> str:
    """One row per caller → callee pair."""
    rows = [
        [
            row["source"]["service"],
            row["destination"]["service"],
            row["destination"]["version"],
            row["source"]["namespace"],
            row["destination"]["namespace"],
            "yes" if row["mtls"] else "no (plaintext)",
            row["identity"],
            row["requests"],
        ]
        for row in answer["rows"]
    ]
    if not rows:
        return f"no traffic in the last {answer['window_s']:g}s\n"
    headers = ["SRC", "DST", "DST_VERSION", "SRC_NS", "DST_NS", "SECURED", "CLIENT_ID", "REQUESTS"]
    return table(headers, rows)


def edges(
    service: str | None = typer.Argument(
        None, metavar="[SERVICE]", help="Only edges from or to this service."
    ),
    window: str = typer.Option(
        "1h", "--time-window", "-t", callback=_window, help="10s to 1h, e.g. 30s, 5m."
    ),
    namespace: str | None = _NAMESPACE,
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Who called whom in the window, with the caller's verified identity and whether over mTLS.

    Each edge is as the callee's sidecar saw it: a caller without a sidecar (or over
    plaintext) shows as "unknown".
    """
    check_names({"SERVICE": service, "--namespace": namespace})
    params = {"window": window, "by": "edge"}
    if namespace is not None:
        params["namespace"] = namespace
    if service is not None:
        params["service"] = service
    emit(_ask(Api(server, token), params), output, edges_table)
