"""``meshpy token``: join tokens that let the sidecars of one service register."""

from __future__ import annotations

from typing import Any

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, Api, narrate
from meshpy.cli._output import OUTPUT_OPTION, Format, emit, table

__all__ = ["app"]

app = typer.Typer(help="Manage join tokens.", no_args_is_help=True, rich_markup_mode=None)


@app.callback()
def _group() -> None:
    """Manage join tokens."""


@app.command("create")
def create(
    service: str = typer.Option(
        ..., "--service", "-s", metavar="NAME", help="The service the token is for."
    ),
    namespace: str = typer.Option(
        "default", "--namespace", "-n", metavar="NS", help="Its namespace."
    ),
    ttl: str = typer.Option(
        "24h", "--ttl", metavar="DURATION", help='How long the token is valid: "30m", "24h".'
    ),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Create a join token and print it (it is shown this once).

    With the default output, stdout is the token alone: TOKEN=$(meshpy token create -s cart).
    """
    api = Api(server, token)
    body = {"namespace": namespace, "service": service, "ttl": ttl}
    created = api.json("POST", "/api/v1/tokens", json=body)
    if output is Format.TABLE:
        narrate(
            f"join token {created['id']} for {namespace}/{service}, "
            f"valid until {created['expires_at']}"
        )
        typer.echo(created["token"])
    else:
        emit(created, output, lambda _: "")


@app.command("list")
def list_tokens(
    namespace: str | None = typer.Option(
        None, "--namespace", "-n", metavar="NS", help="Only this namespace."
    ),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """List join tokens (never their secrets)."""
    params = {"namespace": namespace} if namespace else {}
    data = Api(server, token).json("GET", "/api/v1/tokens", params=params)

    def as_table(data: Any) -> str:
        rows = [(t["id"], t["namespace"], t["service"], t["expires_at"]) for t in data["items"]]
        return table(["ID", "NAMESPACE", "SERVICE", "EXPIRES"], rows)

    emit(data, output, as_table)


@app.command("revoke")
def revoke(
    token_id: str = typer.Argument(..., metavar="ID", help="The token's id (from `token list`)."),
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Revoke a join token."""
    Api(server, token).request("DELETE", f"/api/v1/tokens/{token_id}")
    typer.echo(f"token/{token_id} revoked")
