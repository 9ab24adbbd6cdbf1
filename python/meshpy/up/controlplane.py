"""The control plane under ``meshpy up``: a ``meshpy server`` child, waited for, asked over REST.

The server is started with ``--ready-file <home>/server-ready.json``: its URL comes from
that file (``meshpy.readyfile``), once it names the child's PID, never from its log.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshpy.errors import MeshpyError
from meshpy.readyfile import read_ready
from meshpy.up.instance import Instance
from meshpy.up.procs import Child, Processes

if TYPE_CHECKING:
    import httpx

    from meshpy.up.rollouts import Connection

__all__ = ["NAMESPACE", "READY_FILE", "ControlPlane", "StartError"]

NAMESPACE = "default"
READY_FILE = "server-ready.json"
"""In the home directory: where the server says it listens (``--ready-file``)."""
SERVER_START_S = 30.0
ROLLOUT_REQUEST_S = 5.0
RENEW_EVERY = "1s"
"""How often the embedded control plane has instances report (unless MESHPY_RENEW_EVERY
says): a local mesh is small, and its table then follows health changes within a second."""


class StartError(MeshpyError):
    """Something did not start; ``child`` is the process whose log tells why, if any."""

    def __init__(self, message: str, child: Child | None = None) -> None:
        super().__init__(message)
        self.child = child


class ControlPlane:
    """One ``meshpy server`` child: its URL and an admin client once it is ready."""

    def __init__(self, child: Child, home: Path) -> None:
        self.child = child
        self.home = home
        self.url = ""
        """Where it listens, from its ready file; empty until then."""
        self.admin_token = ""
        self.api: httpx.Client | None = None
        """The REST API with the admin token, once the server is ready."""

    @classmethod
    def spawn(
        cls, procs: Processes, home: Path, listen: str, env: Mapping[str, str]
    ) -> ControlPlane:
        """Start ``meshpy server`` on ``listen`` with its data in ``home``; raises OSError."""
        env = dict(env)
        env["MESHPY_HOME"] = str(home)
        env.setdefault("MESHPY_RENEW_EVERY", RENEW_EVERY)
        ready_file = home / READY_FILE
        ready_file.unlink(missing_ok=True)  # one an earlier server left when it was killed
        argv = [sys.executable, "-m", "meshpy", "server", "--listen", listen]
        argv += ["--data-dir", str(home), "--ready-file", str(ready_file)]
        return cls(procs.spawn("server", argv, env=env, cwd=home), home)

    def wait_ready(self, stopping: threading.Event) -> None:
        """Wait until it listens (``url`` is set) and answers /readyz, or ``stopping`` is set.

        Raises StartError if it exits or is not ready in ``SERVER_START_S``.
        """
        server = self.child
        deadline = time.monotonic() + SERVER_START_S
        while not self.url:
            ready = read_ready(self.home / READY_FILE)
            if ready is not None and ready.pid == server.pid:
                self.url = ready.url
                break
            self.check()
            if time.monotonic() > deadline:
                raise StartError(f"the control plane did not start in {SERVER_START_S:g}s", server)
            if stopping.wait(0.05):
                return
        self._wait_answering(deadline, stopping)

    def _wait_answering(self, deadline: float, stopping: threading.Event) -> None:
        import httpx

        token = (self.home / "admin-token").read_text(encoding="utf-8").strip()
        self.admin_token = token
        self.api = api = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
            trust_env=False,
        )
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if api.get("/readyz").status_code == 200:
                    return
            if not self.child.running() or time.monotonic() > deadline:
                raise StartError("the control plane is not ready", self.child)
            if stopping.wait(0.1):
                return

    def running(self) -> bool:
        """Whether the server process has not exited."""
        return self.child.running()

    def check(self) -> None:
        """Raise StartError if the server process exited."""
        if not self.child.running():
            msg = f"the control plane exited with code {self.child.proc.returncode}"
            raise StartError(msg, self.child)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A REST call with the admin token: its JSON answer; raises StartError."""
        import httpx

        assert self.api is not None
        try:
            answer = self.api.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StartError(f"{method} {path}: {exc}", self.child) from None
        if answer.status_code >= 400:
            raise StartError(f"{method} {path}: {_problem(answer)}")
        return answer.json() if answer.content else None

    def refresh_states(self, instances: Sequence[Instance]) -> None:
        """Set each instance's state as the registry has it (kept when it cannot be asked)."""
        import httpx

        if self.api is None:
            return
        by_id: dict[str, str] = {}
        for service in sorted({i.replica.service for i in instances}):
            try:
                answer = self.api.get(f"/api/v1/namespaces/{NAMESPACE}/services/{service}")
            except httpx.HTTPError:
                return  # keep the states last seen
            if answer.status_code == 200:
                for endpoint in answer.json().get("endpoints", []):
                    by_id[str(endpoint["id"])] = str(endpoint["state"])
        for inst in instances:
            if inst.exited is not None:
                continue
            if inst.instance_id is None:
                inst.state = "starting"
            else:
                inst.state = by_id.get(inst.instance_id, "not registered")

    def revoke_tokens(self, token_ids: Sequence[str]) -> None:
        """Revoke join tokens, if the server still runs; a failure is left unsaid."""
        import httpx

        if self.api is None or not self.running():
            return
        for token_id in token_ids:
            with contextlib.suppress(httpx.HTTPError):
                self.api.delete(f"/api/v1/tokens/{token_id}", timeout=2.0)

    def connect(self) -> Connection:
        """A ``meshpy.rules.Client`` with the admin token, for a rollout's thread."""
        from meshpy.rules import Client

        return Client(self.url, self.admin_token, namespace=NAMESPACE, timeout=ROLLOUT_REQUEST_S)

    def close(self) -> None:
        """Close the REST client."""
        if self.api is not None:
            self.api.close()


def _problem(answer: httpx.Response) -> str:
    try:
        problem = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if not isinstance(problem, dict):
        return f"HTTP {answer.status_code}"
    errors = problem.get("errors") or []
    detail = problem.get("detail") or problem.get("title") or f"HTTP {answer.status_code}"
    if errors:
        detail += ": " + "; ".join(f"{e.get('path')}: {e.get('message')}" for e in errors)
    return str(detail)
