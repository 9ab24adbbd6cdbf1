"""A small blocking client of the control plane's REST API, on the standard library.

Every call opens its own connection (the control plane is few calls a minute away, and a
fresh connection never trips over one the server closed), has a timeout, and turns
answers into either parsed JSON or a ``ControlPlaneError`` that says whether trying again
later can help.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from meshpy._core import MeshpyError  # meshpy.errors's base; the sidecar imports only _core

__all__ = ["ControlPlaneClient", "ControlPlaneError", "Response", "instance_path"]

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_BODY = 16 << 20
"""Largest answer read; a snapshot of a big mesh is a few MB."""


class ControlPlaneError(MeshpyError):
    """A call failed: unreachable (``status`` None), or answered with an error status."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later (network trouble, overload, outage)."""
        return self.status is None or self.status in _RETRYABLE_STATUS


@dataclass(frozen=True)
class Response:
    """A successful answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class ControlPlaneClient:
    """Calls ``base_url`` (``http://127.0.0.1:15010``) with a bearer token."""

    base_url: str
    token: str
    timeout: float = 10.0
    _scheme: str = field(init=False, repr=False)
    _host: str = field(init=False, repr=False)
    _port: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"control plane URL {self.base_url!r} must look like http://host:port"
            raise ValueError(msg)
        default_port = 443 if parts.scheme == "https" else 80
        object.__setattr__(self, "_scheme", parts.scheme)
        object.__setattr__(self, "_host", parts.hostname)
        object.__setattr__(self, "_port", parts.port or default_port)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
    ) -> Response:
        """Send one request; return the answer if its status is in ``ok``, else raise."""
        url = path + ("?" + urlencode(query) if query else "")
        sent = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        conn = self._connection(timeout or self.timeout)
        try:
            conn.request(method, url, body=payload, headers=sent)
            answer = conn.getresponse()
            data = answer.read(_MAX_BODY + 1)
        except (OSError, http.client.HTTPException) as err:
            reason = "timed out" if isinstance(err, socket.timeout) else str(err) or repr(err)
            raise ControlPlaneError(f"{method} {path}: {reason}") from err
        finally:
            conn.close()
        if len(data) > _MAX_BODY:
            raise ControlPlaneError(f"{method} {path}: answer larger than {_MAX_BODY} bytes")
        headers_out = {k.lower(): v for k, v in answer.getheaders()}
        if answer.status not in ok:
            raise _error(method, path, answer.status, headers_out, data)
        return Response(answer.status, headers_out, data)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._scheme == "https":
            context = ssl.create_default_context()
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=context
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)


def instance_path(namespace: str, service: str, instance: str | None = None) -> str:
    """``/api/v1/namespaces/{ns}/services/{svc}/instances[/{id}]``."""
    base = f"/api/v1/namespaces/{quote(namespace)}/services/{quote(service)}/instances"
    return f"{base}/{quote(instance)}" if instance else base


def _error(
    method: str, path: str, status: int, headers: dict[str, str], body: bytes
) -> ControlPlaneError:
    detail = ""
    try:
        problem = json.loads(body)
        if isinstance(problem, dict):
            detail = str(problem.get("detail") or problem.get("title") or "")
    except ValueError:
        detail = body[:200].decode(errors="replace")
    retry_after = None
    with contextlib.suppress(ValueError):
        retry_after = float(headers.get("retry-after", ""))
    message = f"{method} {path}: {status}" + (f" {detail}" if detail else "")
    return ControlPlaneError(message, status=status, retry_after=retry_after)
