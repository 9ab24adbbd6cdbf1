"""``meshpy service``: the services in the registry and their endpoints."""

from __future__ import annotations

from typing import Any

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, Api
from meshpy.cli._output import OUTPUT_OPTION, Format, emit, table

__all__ = ["app", "describe_service", "services_table"]

app = typer.Typer(help="Inspect services.", no_args_is_help=True, rich_markup_mode=None)


@app.callback()
def _group() -> None:
    """Inspect services."""


def services_table(data: Any) -> str:
    """The table of ``meshpy service list`` and ``meshpy get services``."""
    rows = [
        (
            s["namespace"],
            s["name"],
            s["protocol"],
            f"{s['endpoints_ready']}/{s['endpoints_total']}",
            s["version_of"],
        )
        for s in data["items"]
    ]
    return table(["NAMESPACE", "NAME", "PROTOCOL", "READY", "VERSION-OF"], rows)


def endpoints_table(service: Any) -> str:
    """The endpoints of one service."""
    rows = [
        (
            e["id"],
            f"{e['address']}:{e['inbound_port']}",
            e["app_port"],
            e["version"],
            e["zone"],
            e["state"],
        )
        for e in service["endpoints"]
    ]
    return table(["ID", "ADDRESS", "APP-PORT", "VERSION", "ZONE", "STATE"], rows)


def describe_service(service: Any) -> str:
    """The ``meshpy describe service NAME`` text."""
    lines = [
        f"Name:        {service['name']}",
        f"Namespace:   {service['namespace']}",
        f"Protocol:    {service['protocol']}",
    ]
    if service.get("version_of"):
        lines.append(f"Version of:  {service['version_of']} (version {service['version']})")
    lines.append(f"Ready:       {service['endpoints_ready']}/{service['endpoints_total']}")
    lines.append(f"Created:     {service['created_at']}")
    text = "\n".join(lines) + "\n"
    if service["endpoints"]:
        text += "Endpoints:\n" + _indent(endpoints_table(service))
    else:
        text += "Endpoints:   none\n"
    return text


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


@app.command("list")
def list_services(
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", metavar="NS", help="Only this namespace [default: all]."
    ),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """List services with their ready/total endpoints; version services too."""
    path = f"/api/v1/namespaces/{namespace}/services" if namespace else "/api/v1/services"
    emit(Api(server, token).json("GET", path), output, services_table)
