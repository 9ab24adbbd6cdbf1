"""``meshpy up``: start a mesh file, watch it until told to stop, stop it in order, sum it up.

Start (``meshpy.up.start``): the control plane, a join token per service, the resources,
then the instances wave by wave. Watch (``meshpy.up.watch``): the live table. Rollouts
(the mesh file's ``rollouts``): once every instance is healthy, each runs on a thread of
its own (``meshpy.up.rollouts``), narrated line by line; a stop interrupts them (each
rolls back) before anything else stops, and their outcomes end the summary. Stop
(``meshpy.up.stop``) comes on SIGTERM, SIGINT, SIGHUP, the duration's end, or a failure.
Logs: ``<home>/logs/<name>.log``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from meshpy.up.controlplane import NAMESPACE, StartError
from meshpy.up.display import Output, PlainView, View
from meshpy.up.meshfile import MeshFile
from meshpy.up.procs import Processes, become_subreaper
from meshpy.up.rollouts import Job
from meshpy.up.start import start
from meshpy.up.state import Options, UpState
from meshpy.up.stop import stop
from meshpy.up.summary import summary
from meshpy.up.traces import read_slowest
from meshpy.up.watch import watch

__all__ = ["EXIT_FAILED", "EXIT_OK", "Options", "Up"]

EXIT_OK = 0
EXIT_FAILED = 1
ROLLOUT_STOP_S = 15.0
"""How long a stop waits for the rollouts to roll back (each request times out sooner)."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""SIGHUP too: a closed terminal stops the mesh in order as well."""


class Up:
    """Runs one mesh file: ``run()`` returns the exit code."""

    def __init__(
        self,
        mesh: MeshFile,
        resources: Sequence[Path],
        options: Options,
        view: View | None = None,
        *,
        title: str | None = None,
    ) -> None:
        home = options.home.resolve()
        self.state = UpState(
            mesh=mesh,
            resources=list(resources),
            options=options,
            out=Output(view or PlainView()),
            title=title or mesh.name or options.base_dir.resolve().name or "mesh",
            home=home,
            procs=Processes(home / "logs"),
        )

    def run(self) -> int:
        """Start, watch until stopped, stop; print a summary. Returns the exit code."""
        up = self.state
        lock = self._lock_home()
        if lock is None:
            return EXIT_FAILED
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        become_subreaper()
        started = False
        try:
            try:
                start(up)
                started = not up.stopping.is_set()
            except StartError as exc:
                up.failed = True
                up.out.error(str(exc))
                if exc.child is not None:
                    up.out.error(f"last lines of {exc.child.log_path}:")
                    for line in exc.child.log_tail().splitlines():
                        up.out.error(f"  {line}")
            if started:
                self._start_rollouts()
                watch(up)
        finally:
            self._stop_rollouts()
            if started:
                up.slowest_traces = read_slowest(up)
            up.out.close()
            clean = stop(up)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for client in (up.server, up.sidecars):
                if client is not None:
                    client.close()
            lock.close()
        if started:
            for line in summary(up):
                up.out.line(line)
        return EXIT_OK if clean and not up.failed else EXIT_FAILED

    def _lock_home(self) -> IO[str] | None:
        """Hold ``<home>/up.lock`` while running: one ``meshpy up`` per home directory."""
        import fcntl

        home = self.state.home
        home.mkdir(parents=True, exist_ok=True)
        lock = (home / "up.lock").open("a", encoding="utf-8")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            self.state.out.error(f"another meshpy up is running with {home} (MESHPY_HOME)")
            return None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        return lock

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        up = self.state
        if up.stopping.is_set():
            up.hurry.set()  # a second Ctrl-C: do not wait for the drains
        up.stopping.set()
        up.ending.set()

    def _start_rollouts(self) -> None:
        up = self.state
        assert up.server is not None
        plans = up.mesh.plans(NAMESPACE)
        for spec, plan in zip(up.mesh.rollouts, plans, strict=True):
            job = Job(plan, spec.after, up.server.connect, up.ending, up.out.say)
            up.rollouts.append(job)
            job.start()

    def _stop_rollouts(self) -> None:
        """Interrupt the rollouts (each rolls back) while the control plane still runs."""
        up = self.state
        up.ending.set()
        deadline = time.monotonic() + ROLLOUT_STOP_S
        for job in up.rollouts:
            if not job.join(max(0.0, deadline - time.monotonic())):
                up.out.error(f"rollout {job.name} did not stop in {ROLLOUT_STOP_S:g}s")
