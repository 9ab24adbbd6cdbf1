"""``meshpy analyze``: check resources in files before apply, or on the server in place."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, Api, fail, narrate
from meshpy.cli._output import OUTPUT_OPTION, Format, emit, table
from meshpy.cli.resources import DOCUMENT_NAMESPACE_OPTION

if TYPE_CHECKING:
    from meshpy.analyze import Finding
    from meshpy.resources import Resource

__all__ = ["analyze"]


def analyze(
    files: list[str] | None = typer.Option(
        None,
        "--filename",
        "-f",
        metavar="FILE|DIR|-",
        help="Check the documents of these files (as for apply); without -f, the resources "
        "on the server. Repeatable.",
    ),
    namespace: str = DOCUMENT_NAMESPACE_OPTION,
    offline: bool = typer.Option(
        False,
        "--offline",
        help="With -f: do not ask the server for its services (skips MP001 and MP005).",
    ),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Find problems in resources: codes MP001-MP005 (see the README); exit 1 on an error.

    MP000 invalid document, MP001 backend Service missing, MP002 rule sends requests
    nowhere, MP003 rule never matches, MP004 requests left unmatched (404), MP005 policy
    targets nothing. Warnings alone exit 0.
    """
    from meshpy import analyze as checks
    from meshpy import resources

    findings: list[Finding] = []
    found: list[Resource] = []
    api = None if offline else Api(server, token)
    if files:
        from meshpy.cli.resources import _read_documents

        documents, origins = _read_documents(files)
        if not documents:
            fail("no documents found")
        for doc, origin in zip(documents, origins, strict=True):
            try:
                res = resources.parse(doc)
            except resources.ResourceError as exc:
                where = f"{origin.source}[{origin.index}]"
                findings += [checks.Finding("MP000", where, m, p) for p, m in exc.details]
                continue
            found.append(res if res.namespace else replace(res, namespace=namespace))
    elif api is None:
        fail("--offline needs -f: without files the resources come from the server")
    else:
        for info in resources.KINDS.values():
            for doc in api.json("GET", f"/api/v1/{info.plural}")["items"]:
                found.append(resources.parse(doc))
    services = None
    if api is not None:
        items = api.json("GET", "/api/v1/services")["items"]
        services = {(s["namespace"], s["name"]) for s in items}
    findings += checks.analyze(found, services)
    data = {"findings": [f.as_dict() for f in findings]}
    emit(data, output, _table)
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    checked = f"{len(found)} resource(s) checked"
    narrate(
        f"{checked}: {errors} error(s), {warnings} warning(s)"
        if findings
        else f"{checked}: no problems found"
    )
    if errors:
        raise typer.Exit(1)


def _table(data: Any) -> str:
    rows = [
        (
            f["code"],
            f["severity"],
            f["resource"],
            f"{f['path']}: {f['message']}" if f["path"] else f["message"],
        )
        for f in data["findings"]
    ]
    if not rows:
        return ""
    return table(["CODE", "SEVERITY", "RESOURCE", "MESSAGE"], rows)


def _joined(path: str, message: str) -> str:
    return f"{path}: {message}" if path else message
