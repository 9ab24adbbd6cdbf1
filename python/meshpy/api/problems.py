"""Every error the API returns is an RFC 9457 problem (``application/problem+json``).

::

    {"type": "https://meshpy.io/problems/invalid-resource", "title": "Invalid resource",
     "status": 422, "detail": "spec.rules[0].backendRefs[0].weight: ...",
     "instance": "/api/v1/namespaces/default/httproutes/checkout",
     "errors": [{"path": "spec.rules[0].backendRefs[0].weight", "message": "..."}]}

Handlers raise ``ProblemError`` (``not_found(...)``, ``conflict(...)`` and the like build
one); ``install`` maps it, FastAPI's validation errors, Starlette's HTTP errors (404, 405,
...), ``UnavailableError`` (503 with ``Retry-After``) and anything unexpected (a 500 that
tells nothing internal) to that shape, all in this one module.
"""

from __future__ import annotations

import functools
import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from meshpy.api.store import UnavailableError
from meshpy.errors import MeshpyError

__all__ = [
    "PROBLEM_RESPONSES",
    "ErrorItem",
    "ProblemDetails",
    "ProblemError",
    "conflict",
    "forbidden",
    "install",
    "invalid",
    "not_found",
    "response",
    "unauthorized",
]

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://meshpy.io/problems/"

log = logging.getLogger("meshpy.server")


class ErrorItem(BaseModel):
    """One invalid field."""

    path: str = Field(description="Where: a JSON path such as spec.rules[0].matches[1].path.")
    message: str


class ProblemDetails(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(default=None, description="What went wrong this time.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[ErrorItem] | None = Field(default=None, description="Invalid fields, if any.")


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ProblemDetails, "content": {MEDIA_TYPE: {}}, "description": "Client error"},
    "5XX": {"model": ProblemDetails, "content": {MEDIA_TYPE: {}}, "description": "Server error"},
}
"""``responses=`` for routers, so the OpenAPI document shows the problem shape."""


class ProblemError(MeshpyError):
    """An error to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        slug: str | None = None,
        title: str | None = None,
        errors: list[ErrorItem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.type = TYPE_BASE + slug if slug else "about:blank"
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.headers = headers


def not_found(what: str) -> ProblemError:
    """404 for a named thing that does not exist."""
    return ProblemError(404, f"{what} not found", slug="not-found", title="Not found")


def conflict(detail: str) -> ProblemError:
    """409: the request conflicts with what is stored."""
    return ProblemError(409, detail, slug="conflict", title="Conflict")


def unauthorized(detail: str) -> ProblemError:
    """401 with the Bearer challenge."""
    return ProblemError(
        401,
        detail,
        slug="unauthorized",
        title="Unauthorized",
        headers={"WWW-Authenticate": "Bearer"},
    )


def forbidden(detail: str) -> ProblemError:
    """403: the credentials are good but do not allow this."""
    return ProblemError(403, detail, slug="forbidden", title="Forbidden")


def invalid(errors: list[ErrorItem], *, title: str = "Invalid request") -> ProblemError:
    """422 naming every invalid field."""
    detail = "; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in errors)
    return ProblemError(422, detail, slug="invalid", title=title, errors=errors)


def response(request: Request, problem: ProblemError) -> JSONResponse:
    """The problem as a response to ``request``."""
    body = ProblemDetails(
        type=problem.type,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=request.url.path,
        errors=problem.errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


@functools.cache
def _template_pattern(template: str) -> re.Pattern[str]:
    """An OpenAPI path template (``/a/{b}``) as a regex of the paths it takes."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method that the published schema of ``app`` gives ``path``, sorted."""
    paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return sorted(
        {
            method.upper()
            for template, operations in paths.items()
            if _template_pattern(template).fullmatch(path)
            for method in operations
        }
    )


def install(app: FastAPI) -> None:
    """Make every error of ``app`` a problem document."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return response(request, exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        phrase = HTTPStatus(exc.status_code).phrase
        detail = exc.detail if exc.detail and exc.detail != phrase else None
        if exc.status_code == 404 and detail is None:
            detail = f"no such path: {request.url.path}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allowed := _allowed_methods(app, request.scope["path"])):
            # Starlette names the methods of the first route of the path only.
            headers["Allow"] = ", ".join(allowed)
        problem = ProblemError(exc.status_code, detail, headers=headers or None)
        return response(request, problem)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [_error_item(e) for e in exc.errors()]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            problem = ProblemError(
                400, errors[0].message, slug="malformed", title="Malformed request body"
            )
            return response(request, problem)
        return response(request, invalid(errors))

    async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
        problem = ProblemError(
            503,
            str(exc),
            slug="unavailable",
            title="Service unavailable",
            headers={"Retry-After": "1"},
        )
        return response(request, problem)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return response(request, ProblemError(500, "an unexpected error; see the server log"))

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(UnavailableError, on_unavailable)
    app.add_exception_handler(Exception, on_unexpected)


def _error_item(error: Any) -> ErrorItem:
    loc = list(error.get("loc", ()))
    if loc and loc[0] == "body":
        loc = loc[1:]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return ErrorItem(path=path, message=str(error.get("msg", "invalid")))
