"""`meshpy proxy run --service` sidecar processes and a control plane for them, in tests."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from meshpy.proxyrun import parse_addresses
from tests.integration.proxyproc import ProxyProcess, meshpy_cmd
from tests.integration.serverproc import ServerProcess

READY_TIMEOUT_S = 30.0
_IDENTITY = re.compile(r"meshpy sidecar: identity (\S+), certificate ([0-9a-f]+) ")


def join_token(server: ServerProcess, service: str, namespace: str = "default") -> str:
    """A join token for ``namespace``/``service``."""
    answer = server.client().post(
        "/api/v1/tokens", json={"service": service, "namespace": namespace}
    )
    answer.raise_for_status()
    return str(answer.json()["token"])


REPO = Path(__file__).resolve().parents[2]
APP = (sys.executable, "-m", "tests.integration.meshapp")
"""The test app (tests/integration/meshapp.py) as a `meshpy run` command."""


def spawn_sidecar(
    tmp: Path,
    server: ServerProcess,
    service: str,
    *args: str,
    name: str | None = None,
    app: tuple[str, ...] | None = None,
    token: str | None = None,
    env: dict[str, str] | None = None,
) -> ProxyProcess:
    """Start the sidecar of ``service`` (with its own join token), without waiting for it.

    With ``app``, ``meshpy run ... -- app`` (the sidecar runs the app); else
    ``meshpy proxy run --service``. ``token``: a join token, else a new one is made.
    ``env``: more environment variables for the sidecar (and its app).
    """
    name = name or service
    log_path, out_path = tmp / f"{name}.sidecar.stderr", tmp / f"{name}.sidecar.stdout"
    if app is None:
        command = meshpy_cmd("proxy", "run", "--service", service, "--server", server.url, *args)
    else:
        command = meshpy_cmd("run", "--service", service, "--server", server.url, *args, "--", *app)
    env = {
        **os.environ,
        "MESHPY_TOKEN": token or join_token(server, service),
        "PYTHONPATH": str(REPO),
        **(env or {}),
    }
    with log_path.open("wb") as err, out_path.open("wb") as out:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=tmp, env=env
        )
    return ProxyProcess(tmp / f"{name}.no-config", log_path, out_path, proc)


def wait_sidecar_ready(sidecar: ProxyProcess, timeout: float = READY_TIMEOUT_S) -> ProxyProcess:
    """Wait for "meshpy sidecar: ready" and record the last announced addresses."""
    sidecar.wait_for_log(r"^meshpy sidecar: ready$", timeout=timeout)
    for line in sidecar.log().splitlines():
        addresses = parse_addresses(line)
        if addresses is not None:
            sidecar.addresses = addresses
    return sidecar


def admin_stats(sidecar: ProxyProcess) -> dict[str, Any]:
    """``GET /stats`` of the sidecar's admin listener."""
    answer = httpx.get(f"http://{sidecar.addresses['admin']}/stats", timeout=5)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``predicate`` until it holds; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_applied(server: ServerProcess, *sidecars: ProxyProcess) -> None:
    """Wait until every sidecar serves the registry's current revision."""
    revision = server.client().get("/api/v1/revision").json()["revision"]
    for sidecar in sidecars:

        def applied(sidecar: ProxyProcess = sidecar) -> bool:
            return bool(admin_stats(sidecar)["version"] >= revision)

        wait_until(applied, "the new config applied")


def cluster_endpoints(sidecar: ProxyProcess, cluster: str) -> int:
    """How many endpoints the sidecar has in ``cluster``."""
    return len(admin_stats(sidecar)["clusters"].get(cluster, {}).get("endpoints", []))


def serials(sidecar: ProxyProcess) -> list[str]:
    """The serials of the certificates the sidecar installed, in order."""
    return [m.group(2) for m in _IDENTITY.finditer(sidecar.log())]


def wait_for_new_serial(sidecar: ProxyProcess, after: int, timeout: float) -> list[str]:
    """Wait until the sidecar installed more than ``after`` certificates."""
    deadline = time.monotonic() + timeout
    while len(found := serials(sidecar)) <= after:
        if time.monotonic() > deadline:
            msg = f"no new certificate in {timeout}s; sidecar stderr:\n{sidecar.log()}"
            raise AssertionError(msg)
        time.sleep(0.1)
    return found


@dataclass
class Load:
    """GET ``url`` with ``Host: host`` in a loop on a few threads, counting answers.

    ``rate`` (requests per second, all threads together) paces it; half the threads
    reuse their connection, half open a new one for each request. Anything but a 200 is
    a failure.
    """

    url: str
    host: str
    rate: float = 200.0
    threads: int = 8
    ok: int = 0
    failures: list[tuple[float, str]] = field(default_factory=list)
    """(time.monotonic(), what went wrong) of each failed request."""
    answers: list[tuple[float, dict[str, object]]] = field(default_factory=list)
    """(time.monotonic(), JSON body) of each 200, for tests that look at who answered."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    @property
    def rate_achieved(self) -> float:
        """Requests per second answered, from the first answer to the last."""
        times = [at for at, _ in self.answers]
        return len(times) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    def __enter__(self) -> Load:
        for i in range(self.threads):
            worker = threading.Thread(target=self._loop, args=(i,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)

    def _loop(self, i: int) -> None:
        # Odd threads keep no idle connection: a new one for every request.
        limits = httpx.Limits(max_keepalive_connections=1 if i % 2 == 0 else 0)
        interval = self.threads / self.rate
        client = httpx.Client(timeout=10, limits=limits)
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                failed: str | None = None
                body: dict[str, object] = {}
                try:
                    answer = client.get(self.url, headers={"host": self.host})
                    if answer.status_code == 200:
                        with contextlib.suppress(ValueError):
                            body = answer.json()
                    else:
                        reason = answer.headers.get("x-meshpy-error")
                        failed = f"{answer.status_code} {reason}"
                except httpx.HTTPError as err:
                    failed = repr(err)
                with self._lock:
                    if failed is None:
                        self.ok += 1
                        self.answers.append((time.monotonic(), body))
                    else:
                        self.failures.append((time.monotonic(), failed))
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            client.close()
