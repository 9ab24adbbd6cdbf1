"""Runs the app as a child process: restarts it when it dies, stops it on the way out.

The app runs in its own process group, so a stop reaches whatever it started too; it is
asked to die with the sidecar (``PR_SET_PDEATHSIG``), so even a sidecar killed with
SIGKILL leaves no orphan behind. Restarts back off exponentially up to a cap; a run that
lasted a while resets the backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from meshpy.sidecar.backoff import Backoff

__all__ = ["AppSpec", "AppSupervisor", "RestartPolicy"]

log = logging.getLogger("meshpy.sidecar.app")

RestartPolicy = Literal["always", "on-failure", "never"]
_STABLE_S = 10.0
"""A run at least this long resets the restart backoff."""
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class AppSpec:
    """The app's command line and how it is kept running."""

    command: Sequence[str]
    restart: RestartPolicy = "always"
    stop_grace_s: float = 10.0


def _resolve_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up in the parent: a forked child of a threaded process must
    not import or dlopen anything (another thread may have held those locks at fork)."""
    try:
        import ctypes  # only sidecars that run an app need it

        prctl: Callable[..., int] = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None
    return prctl


def _die_with_parent(prctl: Callable[..., int] | None) -> Callable[[], None]:
    """What the child runs before exec: its own session, and SIGTERM when the sidecar
    dies, however it dies."""

    def in_child() -> None:
        os.setsid()
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return in_child


@dataclass
class AppSupervisor:
    """Starts ``spec.command`` with ``env`` and keeps it running per ``spec.restart``."""

    spec: AppSpec
    env: Mapping[str, str]
    on_exit: Callable[[int, bool], None] = lambda code, restarting: None
    """Called with the app's exit code, and whether it is restarted, each time it exits."""
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=30.0))
    restarts: int = 0
    finished: threading.Event = field(default_factory=threading.Event)
    """Set when the app exited and, by the policy, stays down."""
    _proc: subprocess.Popen[bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._in_child = _die_with_parent(_resolve_prctl())

    @property
    def pid(self) -> int | None:
        """The app's PID while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the app once; raises OSError when the command cannot be run."""
        with self._lock:
            self._proc = subprocess.Popen(
                list(self.spec.command),
                env=dict(self.env),
                stdin=subprocess.DEVNULL,
                preexec_fn=self._in_child,  # noqa: PLW1509 - it calls only setsid and a resolved prctl
            )
        log.info("app started: pid %d", self._proc.pid)

    def run(self, stop: threading.Event) -> None:
        """Wait on the app and restart it per the policy until ``stop`` or ``stop_app``."""
        while not (stop.is_set() or self._stopping.is_set()):
            proc = self._proc
            if proc is None:
                return
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            policy = self.spec.restart
            restarting = not (policy == "never" or (policy == "on-failure" and code == 0))
            self.on_exit(code, restarting)
            if time.monotonic() - started >= _STABLE_S:
                self.backoff.reset()
            if not restarting:
                log.info("app exited with %d; not restarting (--restart %s)", code, policy)
                self.finished.set()
                return
            delay = self.backoff.next()
            log.warning("app exited with %d; restarting in %.1fs", code, delay)
            if stop.wait(delay) or self._stopping.is_set():
                return
            try:
                self.start()
            except OSError as err:
                log.error("cannot restart the app: %s", err)
                continue
            self.restarts += 1

    @property
    def returncode(self) -> int | None:
        """The app's exit code once it exited."""
        proc = self._proc
        return proc.returncode if proc is not None else None

    def exited(self) -> bool:
        """Whether the app is not running now."""
        return self.pid is None

    def signal(self, sig: int) -> None:
        """Forward ``sig`` to the app's process group."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    def stop(self) -> int | None:
        """SIGTERM the app, SIGKILL it after the grace; returns its exit code."""
        self._stopping.set()
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                proc.wait(self.spec.stop_grace_s)
            except subprocess.TimeoutExpired:
                log.warning("app still running %gs after SIGTERM: SIGKILL", self.spec.stop_grace_s)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        else:
            # The group may outlive its leader: take its children down too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return proc.returncode
