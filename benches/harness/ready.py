"""Waiting until a started server serves: ready URLs, and probes that say what they saw."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.backend import BODY
from harness.net import http_get
from harness.processes import Popen, Processes, failure

Probe = Callable[[], str | None]  # None when ready, else what it saw


def wait_ready(procs: Processes, name: str, proc: Popen, urls: list[str]) -> None:
    """Poll until every URL answers 200, the last one with the backend's body."""
    deadline = time.monotonic() + 30.0
    pending = list(urls)
    status: tuple[int | None, str] = (None, "")
    while pending:
        if proc.poll() is not None:
            raise failure(f"{name} exited with {proc.returncode}", procs.log_tail(name))
        if time.monotonic() > deadline:
            got = f"{status[0]} {status[1][:60]!r}"
            raise failure(f"{name} not ready ({pending[0]} gave {got})", procs.log_tail(name))
        status = http_get(pending[0])
        if status[0] == 200 and (len(pending) > 1 or status[1] == BODY):
            pending.pop(0)
        else:
            time.sleep(0.1)


def probe_http(url: str) -> Probe:
    """A probe: None once url answers 200 (with the backend's body unless /ready)."""

    def probe() -> str | None:
        status, body = http_get(url)
        if status == 200 and (url.endswith("/ready") or body == BODY):
            return None
        return f"{url} gave {status} {body[:60]!r}"

    return probe


def wait_until(procs: Processes, name: str, proc: Popen, probe: Probe) -> None:
    """Poll the probe until it passes; fail if the process exits or after 30 s."""
    deadline = time.monotonic() + 30.0
    while (why := probe()) is not None:
        if proc.poll() is not None:
            raise failure(f"{name} exited with {proc.returncode}", procs.log_tail(name))
        if time.monotonic() > deadline:
            raise failure(f"{name} not ready ({why})", procs.log_tail(name))
        time.sleep(0.1)
