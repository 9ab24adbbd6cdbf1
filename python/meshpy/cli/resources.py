"""``meshpy apply / get / describe / delete``: resources (and services) on the control plane.

KIND is a resource kind by plural, singular or short name, any case (``httproutes``,
``HTTPRoute``, ``hr``, ``backendpolicy``, ``bp``, ``authz``), or ``services``/``svc``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, Api, fail, report
from meshpy.cli._output import OUTPUT_OPTION, Format, emit, table

__all__ = ["apply", "delete", "describe", "get"]

NAMESPACE_OPTION: Any = typer.Option(
    "default", "--namespace", "-n", metavar="NS", help="The namespace."
)
DOCUMENT_NAMESPACE_OPTION: Any = typer.Option(
    "default",
    "--namespace",
    "-n",
    metavar="NS",
    help="Namespace of documents whose metadata names none.",
)
SERVICE_NAMES = ("services", "service", "svc")


@dataclass(frozen=True)
class _Kind:
    kind: str
    plural: str
    singular: str


def _kind(name: str) -> _Kind | None:
    """The resource kind named ``name``; None for services; exit 2 if unknown."""
    if name.lower() in SERVICE_NAMES:
        return None
    from meshpy import resources as kinds

    info = kinds.kind_info(name)
    if info is None:
        known = ", ".join(sorted([*kinds.KINDS, "services"]))
        typer.echo(f"error: unknown kind {name!r}; use one of {known}", err=True)
        raise typer.Exit(2)
    return _Kind(info.kind, info.plural, info.singular)


# --- apply ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    source: str
    index: int


def apply(
    files: list[str] = typer.Option(
        ...,
        "--filename",
        "-f",
        metavar="FILE|DIR|-",
        help="A YAML or JSON file, a directory of them (*.yaml, *.yml, *.json), or - for stdin. "
        "Repeatable.",
    ),
    namespace: str = DOCUMENT_NAMESPACE_OPTION,
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Create or update every resource in the files, all in one transaction (all or nothing)."""
    documents, origins = _read_documents(files)
    if not documents:
        fail("no documents found")
    result = _apply(Api(server, token), documents, origins, namespace)

    def as_table(data: Any) -> str:
        return "".join(
            f"{item['kind'].lower()}/{item['name']} {item['result']}\n" for item in data["items"]
        )

    emit(result, output, as_table)


def _apply(api: Api, documents: list[Any], origins: list[_Origin], namespace: str) -> Any:
    response = api.send("POST", "/api/v1/apply", params={"namespace": namespace}, json=documents)
    if response.status_code == 422:
        problem = response.json()
        typer.echo(f"error: {problem.get('title', 'Invalid resource')}:", err=True)
        for error in problem.get("errors") or []:
            typer.echo(f"  {_where(error.get('path', ''), origins)}: {error['message']}", err=True)
        raise typer.Exit(1)
    if response.status_code >= 400:
        report(response, api.token is not None)
    return response.json()


def _where(path: str, origins: list[_Origin]) -> str:
    """Turn "[3].spec.rules[0]" into "routes.yaml[1]: spec.rules[0]"."""
    if path.startswith("[") and "]" in path:
        index, _, rest = path[1:].partition("]")
        if index.isdigit() and int(index) < len(origins):
            origin = origins[int(index)]
            return f"{origin.source}[{origin.index}] {rest.lstrip('.') or '(document)'}"
    return path or "(document)"


def _read_documents(files: list[str]) -> tuple[list[Any], list[_Origin]]:
    documents: list[Any] = []
    origins: list[_Origin] = []
    for source, text in _sources(files):
        for index, doc in enumerate(_load(source, text)):
            if doc is None:
                continue
            if isinstance(doc, list):
                for j, item in enumerate(doc):
                    documents.append(item)
                    origins.append(_Origin(f"{source}[{index}]", j))
            else:
                documents.append(doc)
                origins.append(_Origin(source, index))
    return documents, origins


def _sources(files: list[str]) -> list[tuple[str, str]]:
    out = []
    for name in files:
        if name == "-":
            out.append(("<stdin>", sys.stdin.read()))
            continue
        path = Path(name)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
            )
            if not found:
                fail(f"{name}: no .yaml, .yml or .json files")
            out.extend((str(p), _read(p)) for p in found)
        else:
            out.append((name, _read(path)))
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        fail(f"{path}: {reason}")


def _load(source: str, text: str) -> list[Any]:
    import yaml

    from meshpy.configfile import ConfigFileError, _StrictLoader

    try:
        if source.endswith(".json") or text.lstrip().startswith(("{", "[")):
            try:
                return [json.loads(text)]
            except json.JSONDecodeError:
                pass  # YAML flow style, perhaps; the YAML parser says what is wrong
        docs = list(yaml.load_all(text, Loader=_StrictLoader))
    except ConfigFileError as exc:
        fail(f"{source}: {exc}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        fail(f"{source}: {where}{getattr(exc, 'problem', None) or exc}")
    loaded: list[Any] = json.loads(json.dumps(docs, default=str))  # dates etc. as strings
    return loaded


# --- get / describe / delete ---------------------------------------------------------------


def get(
    kind: str = typer.Argument(
        ...,
        metavar="KIND",
        help="What to list: httproutes, backendpolicies, "
        "authorizationpolicies, tracingpolicies, services (or a short name).",
    ),
    name: str | None = typer.Argument(None, metavar="[NAME]", help="One of them by name."),
    namespace: str = NAMESPACE_OPTION,
    all_namespaces: bool = typer.Option(
        False, "--all-namespaces", "-A", help="List every namespace."
    ),
    output: Format = OUTPUT_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """List resources of a kind, or show one."""
    target = _kind(kind)
    api = Api(server, token)
    if target is None:
        from meshpy.cli.service import services_table

        if name is not None:
            data = api.json("GET", f"/api/v1/namespaces/{namespace}/services/{name}")
            emit(data, output, lambda s: services_table({"items": [s]}))
            return
        path = "/api/v1/services" if all_namespaces else f"/api/v1/namespaces/{namespace}/services"
        emit(api.json("GET", path), output, services_table)
        return
    if name is not None:
        data = api.json("GET", f"/api/v1/namespaces/{namespace}/{target.plural}/{name}")
        emit(data, output, lambda doc: _resources_table([doc], all_namespaces))
        return
    path = (
        f"/api/v1/{target.plural}"
        if all_namespaces
        else f"/api/v1/namespaces/{namespace}/{target.plural}"
    )
    data = api.json("GET", path)
    emit(data, output, lambda d: _resources_table(d["items"], all_namespaces))


def _resources_table(items: list[Any], with_namespace: bool) -> str:
    types = []
    for doc in items:
        for condition in _conditions(doc):
            if condition["type"] not in types:
                types.append(condition["type"])
    headers = [*(["NAMESPACE"] if with_namespace else []), "NAME", "GENERATION"]
    headers += [_header(t) for t in types or ["Accepted"]]
    rows = []
    for doc in items:
        row = [doc["metadata"]["namespace"]] if with_namespace else []
        row += [doc["metadata"]["name"], doc["metadata"]["generation"]]
        row += [_summary(doc, t) for t in types or ["Accepted"]]
        rows.append(row)
    return table(headers, rows)


def _header(condition_type: str) -> str:
    out = ""
    for i, c in enumerate(condition_type):
        out += f"-{c}" if c.isupper() and i and not condition_type[i - 1].isupper() else c
    return out.upper()


def _conditions(doc: Any) -> list[Any]:
    status = doc.get("status") or {}
    found = list(status.get("conditions") or [])
    for parent in status.get("parents") or []:
        found += parent.get("conditions") or []
    return found


def _summary(doc: Any, condition_type: str) -> str:
    values = {c["status"] for c in _conditions(doc) if c["type"] == condition_type}
    if not values:
        return "-"
    return "False" if "False" in values else "Unknown" if "Unknown" in values else "True"


def describe(
    kind: str = typer.Argument(..., metavar="KIND", help="A resource kind (or services)."),
    name: str = typer.Argument(..., metavar="NAME", help="Its name."),
    namespace: str = NAMESPACE_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Show one resource (or service) for people: spec, then status conditions."""
    target = _kind(kind)
    api = Api(server, token)
    if target is None:
        from meshpy.cli.service import describe_service

        data = api.json("GET", f"/api/v1/namespaces/{namespace}/services/{name}")
        typer.echo(describe_service(data), nl=False)
        return
    doc = api.json("GET", f"/api/v1/namespaces/{namespace}/{target.plural}/{name}")
    typer.echo(_describe_resource(doc), nl=False)


def _describe_resource(doc: Any) -> str:
    import yaml

    meta = doc["metadata"]
    lines = [
        f"Kind:        {doc['kind']} ({doc['apiVersion']})",
        f"Name:        {meta['name']}",
        f"Namespace:   {meta['namespace']}",
        f"Generation:  {meta['generation']}",
        f"Created:     {meta['creationTimestamp']}",
    ]
    for key in ("labels", "annotations"):
        if meta.get(key):
            pairs = ", ".join(f"{k}={v}" for k, v in meta[key].items())
            lines.append(f"{key.capitalize() + ':':<13}{pairs}")
    spec = yaml.safe_dump(doc["spec"], sort_keys=False, allow_unicode=True)
    text = "\n".join(lines) + "\nSpec:\n" + "".join(f"  {line}\n" for line in spec.splitlines())
    status = doc.get("status") or {}
    groups: list[tuple[str, list[Any]]] = []
    for parent in status.get("parents") or []:
        ref = parent.get("parentRef", {})
        where = f"{ref.get('kind', 'Service')} {ref.get('namespace') or meta['namespace']}/"
        groups.append((f"Parent {where}{ref.get('name')}", parent.get("conditions") or []))
    if status.get("conditions"):
        groups.append(("Conditions", status["conditions"]))
    text += "Status:\n" if groups else "Status:      none\n"
    for title, conditions in groups:
        rows = [(c["type"], c["status"], c.get("reason"), c.get("message")) for c in conditions]
        text += f"  {title}:\n"
        text += "".join(
            f"    {line}\n"
            for line in table(["TYPE", "STATUS", "REASON", "MESSAGE"], rows).splitlines()
        )
    return text


def delete(
    kind: str = typer.Argument(..., metavar="KIND", help="A resource kind (or services)."),
    name: str = typer.Argument(..., metavar="NAME", help="Its name."),
    namespace: str = NAMESPACE_OPTION,
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Delete a resource (or a service without instances)."""
    target = _kind(kind)
    api = Api(server, token)
    if target is None:
        api.request("DELETE", f"/api/v1/namespaces/{namespace}/services/{name}")
        typer.echo(f"service/{name} deleted")
        return
    api.request("DELETE", f"/api/v1/namespaces/{namespace}/{target.plural}/{name}")
    typer.echo(f"{target.singular}/{name} deleted")
