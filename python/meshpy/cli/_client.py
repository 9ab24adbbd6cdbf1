"""How admin commands reach the control plane: server URL, admin token, errors.

The server is ``--server``, else ``MESHPY_SERVER``, else the URL a running server wrote
to ``<home>/server-url``, else http://127.0.0.1:15010. The token is ``--token``, else
``MESHPY_TOKEN``, else ``<home>/admin-token``. ``<home>`` is ``MESHPY_HOME`` or
``./.meshpy``. Every failure — connection refused, a problem answer — is one line
(or one per invalid field) on stderr and exit code 1; ``Api.try_send`` and
``problem_text`` give the same words to a command that goes on after a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from meshpy.errors import MeshpyError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_SERVER",
    "SERVER_OPTION",
    "TOKEN_OPTION",
    "Api",
    "UnreachableError",
    "check_names",
    "fail",
    "home",
    "narrate",
    "problem_text",
    "refuse",
    "report",
]

DEFAULT_SERVER = "http://127.0.0.1:15010"


def _checked_url(value: str | None) -> str | None:
    """``--server`` as given, if it is an http:// or https:// URL with a host; else exit 2."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        valid = False
    if not valid:
        msg = f"{value!r} is not an http:// or https:// URL"
        raise typer.BadParameter(msg)
    return value


SERVER_OPTION: Any = typer.Option(
    None,
    "--server",
    envvar="MESHPY_SERVER",
    metavar="URL",
    callback=_checked_url,
    help="Control plane URL [default: <home>/server-url, else http://127.0.0.1:15010].",
)
TOKEN_OPTION: Any = typer.Option(
    None,
    "--token",
    envvar="MESHPY_TOKEN",
    metavar="TOKEN",
    help="Admin token [default: the content of <home>/admin-token].",
)


def home() -> Path:
    """The data directory: MESHPY_HOME or ./.meshpy."""
    return Path(os.environ.get("MESHPY_HOME") or ".meshpy")


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def refuse(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit 2: the question itself is wrong."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def check_names(names: dict[str, str | None]) -> None:
    """Exit 2 naming the first argument that can't be a namespace, service or version."""
    from meshpy.names import is_name

    for where, value in names.items():
        if value is not None and not is_name(value):
            refuse(f"{where}: {value!r} is not a name (lowercase letters, digits and '-', 1-63)")


def narrate(message: str) -> None:
    """Print a line for the human on stderr (stdout is for data)."""
    typer.echo(message, err=True)


class UnreachableError(MeshpyError):
    """No answer from the control plane; ``str()`` says why in one line."""


class Api:
    """A small client of the REST API for the CLI's commands."""

    def __init__(self, server: str | None, token: str | None) -> None:
        self.server = (server or _read(home() / "server-url") or DEFAULT_SERVER).rstrip("/")
        self.token = token or _read(home() / "admin-token")

    def try_send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request and return any answer; raise UnreachableError without one."""
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            with httpx.Client(base_url=self.server, headers=headers, timeout=30.0) as client:
                return client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UnreachableError(str(exc) or type(exc).__name__) from None

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request and return any answer; with no answer, print why and exit 1."""
        try:
            return self.try_send(method, path, **kwargs)
        except UnreachableError as exc:
            fail(
                f"cannot reach the control plane at {self.server}: {exc} "
                "(is `meshpy server` running?)"
            )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; on a problem answer or no answer, print why and exit 1."""
        response = self.send(method, path, **kwargs)
        if response.status_code >= 400:
            report(response, self.token is not None)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """``request`` and decode the JSON answer."""
        return self.request(method, path, **kwargs).json()


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        problem = response.json()
    except ValueError:
        return {}
    return problem if isinstance(problem, dict) else {}


def problem_text(response: httpx.Response, had_token: bool) -> str:
    """The problem in an error answer, in one line: its detail, else its title."""
    problem = _problem(response)
    if response.status_code == 401 and not had_token:
        return "no admin token: pass --token, set MESHPY_TOKEN or run where <home>/admin-token is"
    return str(problem.get("detail") or problem.get("title") or f"HTTP {response.status_code}")


def report(response: httpx.Response, had_token: bool) -> NoReturn:
    """Print the problem in ``response`` on stderr and exit 1."""
    problem = _problem(response)
    errors = problem.get("errors") or []
    if errors:
        title = problem.get("title") or f"HTTP {response.status_code}"
        typer.echo(f"error: {title}:", err=True)
        for error in errors:
            path = error.get("path") or "(document)"
            typer.echo(f"  {path}: {error.get('message')}", err=True)
        raise typer.Exit(1)
    fail(problem_text(response, had_token))
