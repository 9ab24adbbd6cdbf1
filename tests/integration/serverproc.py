"""`meshpy server` child processes for tests: start, wait until listening, stop by PID."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

READY_TIMEOUT_S = 30.0
_LISTENING = re.compile(r"meshpy server: listening on (http://\S+)")


@dataclass
class ServerProcess:
    """One `meshpy server` this test started; ``stop()`` or the fixture ends it by its PID."""

    home: Path
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    url: str = ""
    clients: list[httpx.Client] = field(default_factory=list, repr=False)

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    @property
    def admin_token(self) -> str:
        """The admin token from the server's data directory."""
        return (self.home / "admin-token").read_text().strip()

    def client(self, token: str | None = None, *, admin: bool = True) -> httpx.Client:
        """An HTTP client of this server with ``token``, or the admin token."""
        bearer = token or (self.admin_token if admin else None)
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)
        self.clients.append(client)
        return client

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit; return its exit code."""
        return self.proc.wait(timeout)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int | None:
        """Send ``sig`` (then SIGKILL if needed) to this PID only; return the exit code."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a server or CLI process using ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHPY_")}
    env.update({"MESHPY_HOME": str(home), **extra})
    return env


def spawn(
    home: Path,
    *,
    db_url: str | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    name: str = "server",
) -> ServerProcess:
    """Start `meshpy server --listen 127.0.0.1:0` without waiting for it."""
    home.mkdir(parents=True, exist_ok=True)
    log_path = home.parent / f"{home.name}-{name}.stderr"
    count = 1
    while log_path.exists():  # a restart gets a log of its own
        count += 1
        log_path = home.parent / f"{home.name}-{name}-{count}.stderr"
    command = [sys.executable, "-m", "meshpy", "server", "--listen", "127.0.0.1:0", *args]
    if db_url:
        command += ["--db", db_url]
    with log_path.open("wb") as err:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=home.parent,
            env=server_env(home, **(env or {})),
        )
    return ServerProcess(home, log_path, proc)


def wait_listening(server: ServerProcess, timeout: float = READY_TIMEOUT_S) -> ServerProcess:
    """Wait for the "listening on" line and for /readyz to answer 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = _LISTENING.search(server.log())
        if match:
            server.url = match.group(1)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200:
                    return server
        if server.proc.poll() is not None:
            break
        time.sleep(0.02)
    with contextlib.suppress(Exception):
        server.stop()
    msg = f"server not ready (exit code {server.proc.poll()}); stderr:\n{server.log()}"
    raise AssertionError(msg)
