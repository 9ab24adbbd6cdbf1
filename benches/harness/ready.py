"""Waiting until a started server serves: its ready URLs, then the backend's body through it."""

from __future__ import annotations

import time

from harness.backend import BODY
from harness.net import http_get
from harness.processes import Popen, Processes, failure


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
