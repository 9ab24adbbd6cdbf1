"""The file ``meshpy server --ready-file`` writes once it listens: its URL and PID, as JSON.

``{"url": "http://127.0.0.1:41234", "pid": 4242}``, written to a temporary file beside it
and renamed into place, so a reader finds the whole file or none; the server removes it
on exit. A program that starts the server (``meshpy up``) learns its URL from here, even
with port 0, never from its log, and checks the PID to know it is its own child's file.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Ready", "read_ready", "remove_ready", "write_ready"]


@dataclass(frozen=True)
class Ready:
    """What a listening server says of itself."""

    url: str
    """Where its REST API answers: ``http://HOST:PORT``."""
    pid: int


def write_ready(path: Path, ready: Ready) -> None:
    """Write ``ready`` to ``path`` atomically; raises OSError."""
    text = json.dumps({"url": ready.url, "pid": ready.pid}) + "\n"
    tmp = path.with_name(f".{path.name}.{ready.pid}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # a rename within the directory: never half a file
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_ready(path: Path) -> Ready | None:
    """What the file says, or None while there is no such file (or it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    match data:
        case {"url": str(url), "pid": int(pid)} if not isinstance(pid, bool):
            return Ready(url, pid)
    return None


def remove_ready(path: Path, pid: int) -> None:
    """Remove the file if it is still the one of process ``pid`` (not a newer server's)."""
    ready = read_ready(path)
    if ready is not None and ready.pid == pid:
        with contextlib.suppress(OSError):
            path.unlink()
