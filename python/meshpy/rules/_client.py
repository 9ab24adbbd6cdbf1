"""``Client``: apply, diff, get and delete resources through the control plane's REST API.

The server is ``server=``, else ``MESHPY_SERVER``, else the URL a running server wrote to
``<home>/server-url``, else http://127.0.0.1:15010; the token is ``token=``, else
``MESHPY_TOKEN``, else ``<home>/admin-token`` (``<home>``: ``MESHPY_HOME`` or
``./.meshpy``), as for the ``meshpy`` commands.

A dry-run client (``dry_run=True``, or every client made while ``meshpy script run
--dry-run`` runs a script) records what ``apply`` and ``delete`` would do and sends
nothing that changes the server; ``get`` and ``diff`` only read, and still ask it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from meshpy.errors import MeshpyError
from meshpy.resources import Resource, kind_info, parse

if TYPE_CHECKING:
    import httpx

__all__ = ["ApiError", "Applied", "Change", "Client", "Recorded", "session"]

DEFAULT_SERVER = "http://127.0.0.1:15010"


class ApiError(MeshpyError):
    """The control plane refused a request (``status``), or could not be reached (status 0)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = tuple(errors)
        text = title + (f": {detail}" if detail else "")
        text += "".join(f"; {path or '(document)'}: {message}" for path, message in self.errors)
        super().__init__(text)


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did to one resource: created, configured, unchanged (or dry-run)."""

    kind: str
    namespace: str
    name: str
    result: Literal["created", "configured", "unchanged", "dry-run"]
    generation: int | None = None


@dataclass(frozen=True)
class Change:
    """How applying a resource would change the server; ``diff`` is a unified YAML diff."""

    kind: str
    namespace: str
    name: str
    action: Literal["created", "changed", "unchanged"]
    diff: str = ""


@dataclass(frozen=True)
class Recorded:
    """An apply or delete that a dry-run client did not send; ``document`` for applies."""

    action: Literal["apply", "delete"]
    kind: str
    namespace: str
    name: str
    document: dict[str, Any] | None = None


@dataclass
class _Session:
    server: str | None = None
    token: str | None = None
    dry_run: bool = False
    recorded: list[Recorded] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)


_session: _Session | None = None


@contextlib.contextmanager
def session(
    server: str | None = None, token: str | None = None, *, dry_run: bool = False
) -> Iterator[_Session]:
    """Defaults for every Client made inside: server, token, dry run; collects what they did."""
    global _session  # noqa: PLW0603 - one script runs at a time
    previous, _session = _session, _Session(server, token, dry_run)
    try:
        yield _session
    finally:
        _session = previous


def _home() -> Path:
    return Path(os.environ.get("MESHPY_HOME") or ".meshpy")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class Client:
    """A client of the control plane's resources API.

    ``namespace`` is where resources whose metadata names none go. Use it as a context
    manager, or call ``close()``, to release its connections.
    """

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        namespace: str = "default",
        dry_run: bool = False,
        timeout: float = 30.0,
    ) -> None:
        current = _session
        server = server or (current.server if current else None) or os.environ.get("MESHPY_SERVER")
        token = token or (current.token if current else None) or os.environ.get("MESHPY_TOKEN")
        self.server = (server or _read(_home() / "server-url") or DEFAULT_SERVER).rstrip("/")
        self.token = token or _read(_home() / "admin-token")
        self.namespace = namespace
        # A dry-run session wins over the script: a dry run never applies anything.
        self.dry_run = bool(dry_run) or bool(current and current.dry_run)
        self.recorded: list[Recorded] = current.recorded if current else []
        self._applied: list[Applied] | None = current.applied if current else None
        self._timeout = timeout
        self._http: httpx.Client | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        import httpx

        if self._http is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._http = httpx.Client(base_url=self.server, headers=headers, timeout=self._timeout)
        return self._http

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self._client().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            msg = f"cannot reach the control plane at {self.server}: {exc}"
            raise ApiError(0, msg) from None
        if response.status_code >= 400 and response.status_code != 404:
            raise _problem(response)
        return response

    def close(self) -> None:
        """Close the connections."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _placed(self, res: Resource) -> Resource:
        return res if res.namespace else dataclasses.replace(res, namespace=self.namespace)

    def _path(self, kind: str, namespace: str, name: str) -> str:
        info = kind_info(kind)
        if info is None:
            msg = f"unknown kind {kind!r}"
            raise ValueError(msg)
        return f"/api/v1/namespaces/{namespace}/{info.plural}/{name}"

    # --- the API ----------------------------------------------------------------------------

    def apply(self, *resources: Resource) -> list[Applied]:
        """Create or update the resources, in one transaction (all or none)."""
        placed = [self._placed(r) for r in resources]
        if not placed:
            return []
        if self.dry_run:
            done = []
            for res in placed:
                ns = res.effective_namespace
                self.recorded.append(Recorded("apply", res.kind, ns, res.name, res.to_document()))
                done.append(Applied(res.kind, ns, res.name, "dry-run"))
            return done
        response = self._send(
            "POST",
            "/api/v1/apply",
            params={"namespace": self.namespace},
            json=[r.to_document() for r in placed],
        )
        applied = [
            Applied(i["kind"], i["namespace"], i["name"], i["result"], i["generation"])
            for i in response.json()["items"]
        ]
        if self._applied is not None:
            self._applied.extend(applied)
        return applied

    def get(self, kind: str, name: str, namespace: str | None = None) -> Resource | None:
        """The resource as stored (kind by any name: "httproute", "hr", ...), or None."""
        response = self._send("GET", self._path(kind, namespace or self.namespace, name))
        if response.status_code == 404:
            return None
        return parse(response.json())

    def diff(self, *resources: Resource) -> list[Change]:
        """What applying the resources would change: created, changed (with a diff) or not."""
        changes = []
        for res in map(self._placed, resources):
            ns = res.effective_namespace
            stored = self.get(res.kind, res.name, ns)
            before = _yaml(stored.to_document()) if stored is not None else ""
            after = _yaml(res.to_document())
            label = f"{res.kind}/{ns}/{res.name}"
            text = "".join(
                difflib.unified_diff(
                    before.splitlines(keepends=True),
                    after.splitlines(keepends=True),
                    fromfile=label if stored is not None else "/dev/null",
                    tofile=label,
                )
            )
            action: Literal["created", "changed", "unchanged"] = (
                "created" if stored is None else "changed" if text else "unchanged"
            )
            changes.append(Change(res.kind, ns, res.name, action, text))
        return changes

    def stats(
        self, service: str, *, version: str | None = None, namespace: str | None = None
    ) -> dict[str, Any]:
        """The inbound traffic of ``service``'s instances (of one ``version``), as the
        control plane adds up their sidecars' reports: cumulative counters, per instance
        and summed (``GET .../services/{service}/stats``). ApiError 404 for an unknown
        service. A read: dry-run clients ask too."""
        path = f"/api/v1/namespaces/{namespace or self.namespace}/services/{service}/stats"
        response = self._send("GET", path, params={"version": version} if version else None)
        if response.status_code == 404:
            raise _problem(response)
        answer: dict[str, Any] = response.json()
        return answer

    def delete(self, *items: Resource | tuple[str, str]) -> list[bool]:
        """Delete resources, given as Resources or ``(kind, name)``; False where none was."""
        done = []
        for item in items:
            if isinstance(item, Resource):
                kind, name, ns = item.kind, item.name, item.namespace or self.namespace
            else:
                kind, name = item
                ns = self.namespace
            path = self._path(kind, ns, name)
            if self.dry_run:
                info = kind_info(kind)
                assert info is not None  # _path checked it
                self.recorded.append(Recorded("delete", info.kind, ns, name))
                done.append(True)
                continue
            done.append(self._send("DELETE", path).status_code != 404)
        return done


def _yaml(doc: dict[str, Any]) -> str:
    import yaml

    text: str = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    return text


def _problem(response: httpx.Response) -> ApiError:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {}
    errors = [
        (str(e.get("path", "")), str(e.get("message", "")))
        for e in problem.get("errors") or []
        if isinstance(e, dict)
    ]
    title = str(problem.get("title") or f"HTTP {response.status_code}")
    detail = problem.get("detail")
    return ApiError(response.status_code, title, str(detail) if detail else None, errors)
