"""The CA's files in ``<home>/ca/``: private files, one writer at a time, the state as JSON.

::

    ca/                        mode 0700
      ca.json                  the state (rotation.State): written last, by atomic rename
      .lock                    held (flock) by whoever writes: init, first start, rotate
      g<N>/root.crt            generation N's root certificate
      g<N>/root.key            its key, when meshpy has it
      g<N>/intermediate.crt    the intermediate the root signed
      g<N>/intermediate.key    the key that signs leaves

Every file is mode 0600 and written to a temporary name, synced, then renamed, so a
reader never sees half a file. Several servers may share the directory; each notices a
new ``ca.json`` by its ``stamp``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from meshpy.ca.rotation import Generation, Rotation, State
from meshpy.errors import MeshpyError

__all__ = [
    "STATE_FILE",
    "StorageError",
    "generation_dir",
    "locked",
    "make_private_dir",
    "read_bytes",
    "read_state",
    "remove_generation",
    "stamp",
    "write_private",
    "write_state",
]

STATE_FILE = "ca.json"
_FORMAT = 1


class StorageError(MeshpyError):
    """A CA file cannot be read, written or understood; ``str()`` names it and says why."""


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and its parents) if needed, and make it mode 0700."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from exc


def generation_dir(directory: Path, generation: int) -> Path:
    """Where generation ``generation``'s files are."""
    return directory / f"g{generation}"


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold the CA directory's write lock (processes on this host queue on it)."""
    make_private_dir(directory)
    try:
        fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot lock {directory}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (mode 0600) atomically, creating its directory (0700)."""
    make_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        _sync_dir(path.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def read_bytes(path: Path) -> bytes:
    """The content of ``path``; StorageError says why it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def remove_generation(directory: Path, generation: int) -> None:
    """Delete a generation's files (its leaves have all expired, or the CA was replaced)."""
    shutil.rmtree(generation_dir(directory, generation), ignore_errors=True)


def stamp(directory: Path) -> tuple[int, int, int] | None:
    """Identifies the current ``ca.json`` (inode, mtime, size); None if there is none."""
    try:
        st = (directory / STATE_FILE).stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {directory / STATE_FILE}: {exc.strerror or exc}") from exc
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_state(directory: Path) -> State | None:
    """The state in ``ca.json``; None if the CA has not been made."""
    path = directory / STATE_FILE
    if stamp(directory) is None:
        return None
    try:
        return _state_from_json(json.loads(read_bytes(path)))
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"{path} is not a meshpy CA state file: {exc}") from exc


def write_state(directory: Path, state: State) -> None:
    """Replace ``ca.json`` with ``state``."""
    text = json.dumps(_state_to_json(state), indent=2) + "\n"
    write_private(directory / STATE_FILE, text.encode())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _state_to_json(state: State) -> dict[str, Any]:
    rot = state.rotation
    return {
        "format": _FORMAT,
        "trust_domain": state.trust_domain,
        "active": state.active,
        "generations": [
            {"id": g.id, "created_at": g.created_at.isoformat(), "source": g.source}
            for g in state.generations
        ],
        "rotation": None
        if rot is None
        else {
            "from": rot.from_generation,
            "to": rot.to_generation,
            "started_at": rot.started_at.isoformat(),
            "switch_at": rot.switch_at.isoformat(),
            "complete_at": rot.complete_at.isoformat(),
        },
    }


def _state_from_json(doc: dict[str, Any]) -> State:
    if doc.get("format") != _FORMAT:
        msg = f"unknown format {doc.get('format')!r} (this meshpy reads {_FORMAT})"
        raise ValueError(msg)
    rot = doc.get("rotation")
    state = State(
        trust_domain=str(doc["trust_domain"]),
        active=int(doc["active"]),
        generations=tuple(
            Generation(id=int(g["id"]), created_at=_time(g["created_at"]), source=str(g["source"]))
            for g in doc["generations"]
        ),
        rotation=None
        if rot is None
        else Rotation(
            from_generation=int(rot["from"]),
            to_generation=int(rot["to"]),
            started_at=_time(rot["started_at"]),
            switch_at=_time(rot["switch_at"]),
            complete_at=_time(rot["complete_at"]),
        ),
    )
    state.generation(state.active)
    if state.rotation is not None:
        state.generation(state.rotation.to_generation)
    return state


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        msg = f"time {text!r} has no timezone"
        raise ValueError(msg)
    return moment
