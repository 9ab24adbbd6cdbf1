"""Resources (HTTPRoute, BackendPolicy, AuthorizationPolicy): CRUD per kind, and apply.

For each kind's plural (``httproutes``, ``backendpolicies``, ``authorizationpolicies``):

- ``GET /api/v1/{plural}`` (every namespace), ``GET /api/v1/namespaces/{ns}/{plural}``
- ``PUT|GET|DELETE /api/v1/namespaces/{ns}/{plural}/{name}``

and ``POST /api/v1/apply``: a YAML stream or a JSON object or list, applied in one
transaction, all or nothing. Every document goes through ``meshpy.resources.parse``;
a refused one is a 422 problem naming the field. Answers are whole documents with
``metadata.generation`` (grows when the spec changes) and the computed ``status``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from sqlalchemy.orm import Session

from meshpy import resources
from meshpy.api import problems
from meshpy.api.deps import AdminDep, StoreDep
from meshpy.api.routers.services import NamespacePath
from meshpy.api.schemas import DNS_LABEL, DNS_SUBDOMAIN
from meshpy.registry import repository

__all__ = ["MAX_BODY_BYTES", "router"]

router = APIRouter(prefix="/api/v1", tags=["resources"])

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest resource document or apply stream accepted."""

NamePath = Annotated[str, Path(pattern=DNS_SUBDOMAIN, max_length=253, examples=["checkout"])]


class ObjectMetaPublic(BaseModel):
    """A stored resource's metadata."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    name: str
    namespace: str
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int = Field(description="Grows by one each time the spec changes.")
    creation_timestamp: str = Field(alias="creationTimestamp")

    @model_serializer(mode="wrap")
    def _drop_empty(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


class ResourcePublic(BaseModel):
    """A stored resource: the document as applied (spec made canonical), and its status."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMetaPublic
    spec: dict[str, Any]
    status: dict[str, Any] = Field(
        description="Conditions (Accepted, ResolvedRefs, ...) computed against the registry."
    )


class ResourceList(BaseModel):
    """Resources of one kind, sorted by namespace and name."""

    items: list[ResourcePublic]


class AppliedItem(BaseModel):
    """What ``apply`` did with one document."""

    kind: str
    namespace: str
    name: str
    generation: int
    result: Literal["created", "configured", "unchanged"]


class ApplyResult(BaseModel):
    """What ``apply`` did, in document order."""

    items: list[AppliedItem]


def _document_schema(kinds: Sequence[resources.KindInfo]) -> dict[str, Any]:
    api_versions = sorted({v for i in kinds for v in (i.api_version, *i.other_api_versions)})
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string", "enum": api_versions},
            "kind": {"type": "string", "enum": [i.kind for i in kinds]},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "namespace": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "spec": {"type": "object", "description": "The kind's spec (see the docs)."},
            "status": {"type": "object", "description": "Ignored: the server computes it."},
        },
    }


def _public(row: Any) -> ResourcePublic:
    return ResourcePublic.model_validate(repository.resource_document(row))


async def _body_text(request: Request) -> str:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise problems.ProblemError(
            400, "the body is not UTF-8", slug="malformed", title="Malformed request body"
        ) from None


def _too_large() -> problems.ProblemError:
    return problems.ProblemError(
        413, f"the body is larger than {MAX_BODY_BYTES} bytes", title="Content too large"
    )


def _refused(exc: resources.ResourceError) -> problems.ProblemError:
    errors = [problems.ErrorItem(path=path, message=message) for path, message in exc.details]
    return problems.invalid(errors, title="Invalid resource")


def _check_storable(value: Any, path: str = "") -> None:
    """Refuse strings no database keeps faithfully: NUL characters, lone surrogates."""
    if isinstance(value, str):
        if "\x00" in value or (not value.isprintable() and _has_surrogate(value)):
            where = path or "body"
            raise problems.invalid(
                [problems.ErrorItem(path=where, message="contains a NUL or an unpaired surrogate")]
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, path)
            _check_storable(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_storable(item, f"{path}[{i}]")


def _check_resource(res: resources.Resource, prefix: str) -> None:
    dot = "." if prefix else ""
    _check_storable(dict(res.labels), f"{prefix}{dot}metadata.labels")
    _check_storable(dict(res.annotations), f"{prefix}{dot}metadata.annotations")
    _check_storable(res.spec_dict(), f"{prefix}{dot}spec")


def _has_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _add_kind_routes(info: resources.KindInfo) -> None:
    plural, kind = info.plural, info.kind
    item_path = f"/namespaces/{{namespace}}/{plural}/{{name}}"

    async def list_all(store: StoreDep, _: AdminDep) -> ResourceList:
        rows = await store.read(repository.list_resources, kind, None)
        return ResourceList(items=[_public(r) for r in rows])

    async def list_namespace(
        namespace: NamespacePath, store: StoreDep, _: AdminDep
    ) -> ResourceList:
        rows = await store.read(repository.list_resources, kind, namespace)
        return ResourceList(items=[_public(r) for r in rows])

    async def get_one(
        namespace: NamespacePath, name: NamePath, store: StoreDep, _: AdminDep
    ) -> ResourcePublic:
        row = await store.read(repository.get_resource, kind, namespace, name)
        if row is None:
            raise problems.not_found(f"{kind} {namespace}/{name}")
        return _public(row)

    async def put_one(
        namespace: NamespacePath,
        name: NamePath,
        request: Request,
        response: Response,
        store: StoreDep,
        _: AdminDep,
    ) -> ResourcePublic:
        text = await _body_text(request)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise problems.ProblemError(
                400, f"invalid JSON: {exc}", slug="malformed", title="Malformed request body"
            ) from None
        try:
            res = resources.parse(doc)
        except resources.ResourceError as exc:
            raise _refused(exc) from None
        _check_resource(res, "")
        mismatch = _mismatch(res, kind, namespace, name)
        if mismatch:
            raise problems.invalid([problems.ErrorItem(path=mismatch[0], message=mismatch[1])])
        applied = await store.write(
            repository.put_resource, res, namespace, now=repository.utcnow()
        )
        if applied.outcome == "created":
            response.status_code = status.HTTP_201_CREATED
        return _public(applied.row)

    async def delete_one(
        namespace: NamespacePath, name: NamePath, store: StoreDep, _: AdminDep
    ) -> None:
        if not await store.write(repository.delete_resource, kind, namespace, name):
            raise problems.not_found(f"{kind} {namespace}/{name}")

    singular = info.singular
    routes: list[tuple[str, Callable[..., Awaitable[Any]], str, str, dict[str, Any]]] = [
        (f"/{plural}", list_all, "GET", f"list_{plural}", {}),
        (
            f"/namespaces/{{namespace}}/{plural}",
            list_namespace,
            "GET",
            f"list_namespaced_{plural}",
            {},
        ),
        (item_path, get_one, "GET", f"get_{singular}", {}),
        (
            item_path,
            put_one,
            "PUT",
            f"put_{singular}",
            {
                "responses": {201: {"model": ResourcePublic, "description": "Created"}},
                "openapi_extra": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _document_schema([info])}},
                    }
                },
            },
        ),
        (item_path, delete_one, "DELETE", f"delete_{singular}", {"status_code": 204}),
    ]
    for path, endpoint, method, operation_id, extra in routes:
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            operation_id=operation_id,
            name=operation_id,
            summary=_summary(operation_id, kind),
            **extra,
        )


def _summary(operation_id: str, kind: str) -> str:
    verb = operation_id.split("_", 1)[0]
    if operation_id.startswith("list_namespaced"):
        return f"List the {kind}s of a namespace"
    return {
        "list": f"List the {kind}s of every namespace",
        "get": f"Get a {kind}",
        "put": f"Create or replace a {kind}",
        "delete": f"Delete a {kind}",
    }[verb]


def _mismatch(
    res: resources.Resource, kind: str, namespace: str, name: str
) -> tuple[str, str] | None:
    if res.kind != kind:
        return "kind", f"this path takes {kind} documents, not {res.kind}"
    if res.name != name:
        return "metadata.name", f"{res.name!r} differs from the name in the path, {name!r}"
    if res.namespace is not None and res.namespace != namespace:
        return "metadata.namespace", f"{res.namespace!r} differs from the path's {namespace!r}"
    return None


for _info in resources.KINDS.values():
    _add_kind_routes(_info)


@router.post(
    "/apply",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A YAML stream (documents separated by ---), or a JSON object or list.",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            _document_schema(list(resources.KINDS.values())),
                            {
                                "type": "array",
                                "items": _document_schema(list(resources.KINDS.values())),
                            },
                        ]
                    }
                },
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def apply(
    request: Request,
    store: StoreDep,
    _: AdminDep,
    namespace: str = Query(
        default="default",
        pattern=DNS_LABEL,
        max_length=63,
        description="The namespace of documents whose metadata names none.",
    ),
) -> ApplyResult:
    """Create or update every document in one transaction: all are applied, or none."""
    text = await _body_text(request)
    try:
        parsed = resources.parse_stream(text)
    except resources.ResourceError as exc:
        raise _refused(exc) from None
    if not parsed:
        raise problems.invalid([problems.ErrorItem(path="", message="no documents")])
    seen: dict[tuple[str, str, str], int] = {}
    for i, res in enumerate(parsed):
        _check_resource(res, f"[{i}]")
        key = (res.kind, res.namespace or namespace, res.name)
        if key in seen:
            message = f"{res.kind} {key[1]}/{key[2]} is also document [{seen[key]}]"
            raise problems.invalid(
                [problems.ErrorItem(path=f"[{i}].metadata.name", message=message)]
            )
        seen[key] = i

    def apply_all(session: Session) -> list[AppliedItem]:
        now = repository.utcnow()
        items = []
        for res in parsed:
            applied = repository.put_resource(session, res, res.namespace or namespace, now=now)
            row = applied.row
            items.append(
                AppliedItem(
                    kind=row.kind,
                    namespace=row.namespace,
                    name=row.name,
                    generation=row.generation,
                    result=applied.outcome,
                )
            )
        return items

    return ApplyResult(items=await store.write(apply_all))
