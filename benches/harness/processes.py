"""Starting pinned processes in a scratch directory; stopping each (and its children) by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.common import log
from harness.procfs import process_tree, start_time

Popen = subprocess.Popen[bytes]


@dataclass
class Launch:
    """How to start a server: its command line, and URLs that answer 200 once it is ready."""

    argv: list[str]
    ready_urls: list[str] = field(default_factory=list)  # checked before the proxy URL


class Processes:
    """Starts pinned processes; stops each one (and its children) by PID."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[Popen] = []

    def start(self, name: str, argv: list[str], cpu: int) -> Popen:
        with open(self.logdir / f"{name}.log", "wb") as logfile:
            proc = subprocess.Popen(
                ["taskset", "-c", str(cpu), *argv],
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: Popen, timeout: float = 5.0) -> None:
        """SIGTERM the process, SIGKILL if needed, then any children left over."""
        children = [(pid, start_time(pid)) for pid in process_tree(proc.pid) if pid != proc.pid]
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid, started in children:
            if started is not None and start_time(pid) == started:  # not a reused PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs[:]):
            self.stop(proc)


@contextlib.contextmanager
def scratch(prefix: str, keep: bool, kept: str) -> Iterator[tuple[Path, Processes]]:
    """A temporary directory and the processes started there: all stopped at the end, and
    the directory removed unless `keep` (then logged as holding `kept`)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    procs = Processes(tmp)
    try:
        yield tmp, procs
    finally:
        procs.stop_all()
        if keep:
            log(f"{kept} kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def failure(what: str, log_tail: str) -> RuntimeError:
    """An error whose first line ends with the last line the process logged."""
    last = log_tail.strip().splitlines()[-1] if log_tail.strip() else "no output"
    return RuntimeError(f"{what}: {last}\n{log_tail}")
