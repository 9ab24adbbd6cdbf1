"""Checks that the app answers: an HTTP GET on a path, or a TCP connect, on its port.

The instance reports healthy only after a check passes, and turns unhealthy after
``failures`` checks in a row fail, so one slow answer does not take it out of the mesh.
Raw sockets rather than an HTTP library: this runs in every sidecar, and only the
status line matters.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["HealthCheck", "probe"]


def probe(port: int, path: str | None, timeout: float) -> bool:
    """One check of the app on 127.0.0.1:``port``: a 2xx/3xx answer to GET ``path``, or a
    TCP connect when ``path`` is None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            if path is None:
                return True
            request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
            sock.sendall(request.encode())
            head = sock.recv(64)
    except OSError:
        return False
    # "HTTP/1.x 200 ..." — the status code is the second word.
    parts = head.split(b" ", 2)
    return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:1] in (b"2", b"3")


@dataclass
class HealthCheck:
    """Probes the app every ``interval`` seconds; ``healthy`` is the verdict."""

    port: int
    path: str | None = None
    interval: float = 1.0
    timeout: float = 1.0
    failures: int = 3
    healthy: bool = False
    on_change: Callable[[bool], None] | None = None
    """Called when the verdict flips (to report it at once, not at the next renewal)."""
    _failed: int = 0
    _wake: threading.Event = field(default_factory=threading.Event)

    def check(self) -> bool:
        """Probe once and update ``healthy``; returns the new verdict."""
        before = self.healthy
        if probe(self.port, self.path, self.timeout):
            self._failed = 0
            self.healthy = True
        else:
            self._failed += 1
            if self._failed >= self.failures or not self.healthy:
                self.healthy = False
        if self.healthy != before and self.on_change is not None:
            self.on_change(self.healthy)
        return self.healthy

    def mark_down(self) -> None:
        """The app exited: unhealthy at once, without waiting for failed probes."""
        self._failed = self.failures
        self.healthy = False

    def run(self, stop: threading.Event) -> None:
        """Probe until ``stop`` is set."""
        while not stop.is_set():
            self.check()
            self._wake.wait(self.interval)
            self._wake.clear()
