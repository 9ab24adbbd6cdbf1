"""``POST /v1/traces``: the OTLP/HTTP trace receiver, where sidecars export their spans.

Answers follow the OTLP/HTTP specification, in the request's encoding: 200 with an
``ExportTraceServiceResponse`` (a partial success names spans refused), else a
``google.rpc.Status`` body with 400 (does not decode), 401 (no valid admin or join
token), 413 (over ``trace_max_body``), 415 (neither protobuf nor JSON), 429 with
Retry-After (over ``trace_rate``), 503 with Retry-After (the database failed). The body
is read in chunks and dropped as soon as it is over the limit; nothing is stored unless
the whole body decodes.
"""

from __future__ import annotations

import asyncio
import math

from fastapi import APIRouter, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param

from meshpy.api import otlp, problems
from meshpy.api.deps import StateDep, require_join_token
from meshpy.api.state import AppState
from meshpy.api.store import UnavailableError
from meshpy.registry import repository

__all__ = ["router"]

router = APIRouter(tags=["tracing"])


@router.post("/v1/traces", include_in_schema=False)
async def export_traces(request: Request, state: StateDep) -> Response:
    """Store the spans of an OTLP ExportTraceServiceRequest."""
    encoding = otlp.encoding_of(request.headers.get("content-type"))
    answer_as = encoding or otlp.JSON
    try:
        decoded = await _receive(request, state, encoding)
    except problems.ProblemError as problem:
        return _failure(problem.status, str(problem), answer_as, problem.headers)
    except UnavailableError as exc:
        return _failure(503, str(exc), answer_as, {"Retry-After": "1"})
    assert encoding is not None  # _receive refuses every other encoding
    return Response(otlp.success_body(decoded, encoding), media_type=encoding)


async def _receive(
    request: Request, state: AppState, encoding: otlp.Encoding | None
) -> otlp.Decoded:
    who = await require_join_token(state, _credentials(request))
    if encoding is None:
        raise problems.ProblemError(
            415, f"send {otlp.PROTOBUF} or {otlp.JSON}, not {request.headers.get('content-type')!r}"
        )
    wait = state.trace_limits.take("admin" if who.admin else f"join:{who.token_id}")
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise problems.ProblemError(
            429,
            f"too many exports from this token ({state.settings.trace_rate:g} a second, "
            f"{state.settings.trace_burst} at once): retry in {retry}s",
            headers={"Retry-After": str(retry)},
        )
    only_service = None if who.admin else who.service
    try:
        body = await _read_body(request, state.settings.trace_max_body)
        # Decoding a few MiB of spans takes a while: off the event loop, other requests go on.
        decoded = await asyncio.to_thread(_decode, body, encoding, only_service)
    except otlp.BodyTooLargeError as exc:
        raise problems.ProblemError(413, str(exc)) from None
    except otlp.BadExportError as exc:
        raise problems.ProblemError(400, str(exc)) from None
    if decoded.spans:
        await state.store.write(repository.record_spans, decoded.spans, now=repository.utcnow())
    return decoded


def _decode(body: bytes, encoding: otlp.Encoding, only_service: str | None) -> otlp.Decoded:
    return otlp.decode(otlp.parse_request(body, encoding), only_service=only_service)


def _credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, decompressed; BodyTooLargeError as soon as it is over ``limit`` bytes."""
    too_large = otlp.BodyTooLargeError(f"the body is over {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    coding = request.headers.get("content-encoding", "identity").strip().lower()
    if coding == "gzip":
        return otlp.gunzip(bytes(body), limit)
    if coding not in ("", "identity"):
        raise problems.ProblemError(415, f"unsupported Content-Encoding {coding!r}: use gzip")
    return bytes(body)


def _failure(
    status: int, message: str, encoding: otlp.Encoding, headers: dict[str, str] | None
) -> Response:
    body = otlp.error_body(status, message, encoding)
    return Response(body, status_code=status, media_type=encoding, headers=headers)
