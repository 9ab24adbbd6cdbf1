"""The processes ``meshpy up`` starts: logged to files, found again in /proc, stopped, checked.

Each child runs in a session of its own, so a Ctrl-C at the terminal reaches ``meshpy up``
alone and the stop happens in order; each is asked to die with it (``PR_SET_PDEATHSIG``),
so even ``meshpy up`` killed with SIGKILL takes its children along. ``meshpy up`` is a
child subreaper: a process of the tree whose parent died becomes its child, so it can
still be found, stopped and reaped. Every process seen in the tree is remembered by PID
and start time (a PID alone may be reused), and checked gone at the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Child",
    "ProcId",
    "Processes",
    "become_subreaper",
    "child_environment",
    "descendants",
    "is_running",
]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_LIBC = ctypes.CDLL(None, use_errno=True)
_prctl = _LIBC.prctl  # resolved now: a forked child should not load anything


def become_subreaper() -> None:
    """Adopt the orphans of this process tree (Linux); best effort elsewhere."""
    with contextlib.suppress(Exception):
        _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


@dataclass(frozen=True, order=True)
class ProcId:
    """A process: its PID and its start time (clock ticks after boot), together unique."""

    pid: int
    start: int


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process from /proc/PID/stat, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode(), int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def descendants(root: int) -> set[ProcId]:
    """Every process below ``root`` (children, their children, ...), from /proc."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None:
            children.setdefault(stat[1], []).append((int(entry), stat[2]))
    found: set[ProcId] = set()
    todo = [root]
    while todo:
        for pid, start in children.get(todo.pop(), []):
            found.add(ProcId(pid, start))
            todo.append(pid)
    return found


def is_running(proc: ProcId) -> bool:
    """Whether that very process still exists and is not a zombie."""
    stat = _stat(proc.pid)
    return stat is not None and stat[2] == proc.start and stat[0] not in ("Z", "X")


def child_environment() -> dict[str, str]:
    """The environment every child starts from: this one, without a join token or server."""
    env = {k: v for k, v in os.environ.items() if k not in ("MESHPY_TOKEN", "MESHPY_SERVER")}
    # `python` in a command is the interpreter meshpy runs with (a virtualenv's, say).
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    return env


def _die_with_parent(parent: int) -> None:
    """In the child, before exec: SIGTERM when ``meshpy up`` dies, however it dies."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # it died before the prctl
        os._exit(1)


@dataclass
class Child:
    """One process ``meshpy up`` started, with its log (stdout and stderr) in a file."""

    name: str
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    id: ProcId

    @property
    def pid(self) -> int:
        """The child's PID."""
        return self.proc.pid

    def running(self) -> bool:
        """Whether it has not exited yet."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of its log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    """The children of ``meshpy up`` and every process seen below them."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)
    seen: set[ProcId] = field(default_factory=set)

    def spawn(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> Child:
        """Start ``argv`` with its output in ``<log_dir>/<name>.log``; raises OSError."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        parent = os.getpid()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=lambda: _die_with_parent(parent),  # noqa: PLW1509 - nothing is imported
            )
        stat = _stat(proc.pid)
        child = Child(name, log_path, proc, ProcId(proc.pid, stat[2] if stat else 0))
        self.children.append(child)
        self.seen.add(child.id)
        return child

    def look(self) -> None:
        """Remember every process now below this one."""
        self.seen |= descendants(os.getpid())

    def stop(
        self, children: Iterable[Child], timeout: float, *, hurry: threading.Event | None = None
    ) -> list[Child]:
        """SIGTERM ``children`` and wait up to ``timeout`` s (or until ``hurry`` is set);
        returns those still running."""
        self.look()
        waiting = [c for c in children if c.running()]
        for child in waiting:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            if hurry is not None and hurry.wait(0.05):
                break
            if hurry is None:
                time.sleep(0.05)
            waiting = [c for c in waiting if c.running()]
        return waiting

    def kill_left(self) -> list[ProcId]:
        """SIGKILL every process seen that still runs, reap this one's children; returns
        the processes that are still there afterwards."""
        self.look()
        for proc in sorted(self.seen):
            if is_running(proc):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(proc.pid, signal.SIGKILL)
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(5)
        deadline = time.monotonic() + 5
        while True:
            self._reap_adopted()
            left = [p for p in sorted(self.seen) if is_running(p)]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def _reap_adopted(self) -> None:
        """Reap zombies that are this process's children but not started by it (orphans)."""
        own = {c.pid for c in self.children}
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in own:
                continue
            stat = _stat(int(entry))
            if stat is not None and stat[1] == me and stat[0] == "Z":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(int(entry), os.WNOHANG)

    def reap(self) -> None:
        """Reap adopted orphans that exited (call now and then)."""
        self._reap_adopted()
