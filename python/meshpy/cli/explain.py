"""``meshpy explain --from cart --to payment GET /charge [-H k:v]``: what the mesh does with
one request, and why, as the control plane's current state makes its sidecars decide.

The question is checked here as the API checks it (``meshpy.explain.ExplainRequest``); a bad
one, or a service the control plane does not know, is an error naming what is wrong and
exit code 2. Exit 0 once explained, whatever the mesh does with the request.
"""

from __future__ import annotations

from typing import Any, NoReturn

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, Api, report
from meshpy.cli._output import OUTPUT_OPTION, Format, emit

__all__ = ["explain"]

_WHERE = {"source": "--from", "destination": "--to", "method": "METHOD", "path": "PATH"}
"""The command-line name of each field of the question."""


def explain(
    method: str = typer.Argument(..., metavar="METHOD", help="The request method, e.g. GET."),
    path: str = typer.Argument(..., metavar="PATH", help="The path, with a query or not."),
    source: str = typer.Option(
        ...,
        "--from",
        metavar="SERVICE[.NAMESPACE]",
        help="The calling service, whose sidecar routes the request.",
    ),
    destination: str = typer.Option(
        ...,
        "--to",
        metavar="SERVICE[.NAMESPACE]",
        help="The service called by name (the request's host); without a namespace, one "
        "in --from's, as its app would call it.",
    ),
    headers: list[str] = typer.Option(
        [], "--header", "-H", metavar="NAME:VALUE", help="A request header. Repeatable."
    ),
    namespace: str = typer.Option(
        "default",
        "--namespace",
        "-n",
        metavar="NS",
        help="Namespace of --from when it names none.",
    ),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Explain what the mesh does with a request from one service to another: the route
    rule and why, the backends and their weights, the BackendPolicy in force, and the
    AuthorizationPolicy decision of the destination with the policy and rule that made it."""
    from pydantic import ValidationError

    from meshpy.cli.explanation import explanation_text
    from meshpy.explain import ExplainRequest

    caller = _service(source, namespace)
    question: dict[str, Any] = {
        "source": caller,
        "destination": _service(destination, caller["namespace"]),
        "method": method,
        "path": path,
        "headers": [_header(i, text) for i, text in enumerate(headers)],
    }
    try:
        ExplainRequest.model_validate(question)
    except ValidationError as exc:
        _bad([(_where(error["loc"]), error["msg"]) for error in exc.errors()])
    api = Api(server, token)
    response = api.send("POST", "/api/v1/explain", json=question)
    if response.status_code == 422:
        problem = response.json()
        _bad([(_where(e["path"].split(".")), e["message"]) for e in problem.get("errors") or []])
    if response.status_code >= 400:
        report(response, api.token is not None)
    emit(response.json(), output, explanation_text)


def _service(text: str, namespace: str) -> dict[str, str]:
    """``payment`` or ``payment.shop`` as a service reference."""
    service, _, in_namespace = text.partition(".")
    return {"service": service, "namespace": in_namespace or namespace}


def _header(index: int, text: str) -> dict[str, str]:
    name, colon, value = text.partition(":")
    if not colon:
        _bad([(f"-H #{index + 1}", f"{text!r} is not NAME:VALUE")])
    return {"name": name.strip(), "value": value.strip()}


def _where(loc: Any) -> str:
    """The command-line name of a field of the question, from its path."""
    parts = [str(part) for part in loc]
    if parts and parts[0] == "headers" and len(parts) > 1:
        return f"-H #{int(parts[1]) + 1}" if parts[1].isdigit() else "-H"
    if parts and parts[0] in _WHERE:
        where = _WHERE[parts[0]]
        return f"{where} namespace" if "namespace" in parts else where
    return ".".join(parts) or "the request"


def _bad(errors: list[tuple[str, str]]) -> NoReturn:
    """Print what is wrong with the question on stderr and exit 2."""
    for where, message in errors:
        typer.echo(f"error: {where}: {message}", err=True)
    raise typer.Exit(2)
