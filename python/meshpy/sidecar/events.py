"""What a sidecar reports to the tool running it (``meshpy up``): JSON lines in a file.

Log lines are for people and may be reworded; these events are the interface. Each line
is an object with an ``event`` key and the event's fields::

    {"event": "addresses", "addresses": {"admin": "127.0.0.1:41234", "inbound": ...}}
    {"event": "registered", "instance": "6f1c...", "namespace": "default", "service": "cart"}
    {"event": "ready"}            {"event": "not_ready"}
    {"event": "app_exited", "code": 1, "restarting": true}
    {"event": "draining"}         {"event": "stopped"}

``registered`` comes again after the control plane lost the instance and it registered
anew; ``app_exited`` with ``restarting`` false means the app is gone for good.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["EventLog", "EventName", "EventReader", "read_events"]

log = logging.getLogger("meshpy.sidecar")

EventName = Literal[
    "addresses", "registered", "ready", "not_ready", "app_exited", "draining", "stopped"
]


@dataclass
class EventLog:
    """Appends events to ``path``; with no path it drops them. Safe to use from any thread."""

    path: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def emit(self, event: EventName, **fields: Any) -> None:
        """Append one event, flushed at once so that a reader sees it now. A file that
        can no longer be written costs the event, logged, not the thread that reports it."""
        if self.path is None:
            return
        line = json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n"
        try:
            with self._lock, open(self.path, "a", encoding="utf-8") as out:
                out.write(line)
        except OSError as err:
            log.warning("cannot write the %s event to %s: %s", event, self.path, err)


@dataclass
class EventReader:
    """Reads the events appended to a file since the last call (the file may not exist yet)."""

    path: Path
    _offset: int = 0
    _partial: bytes = b""

    def new_events(self) -> list[dict[str, Any]]:
        """Events written since the last call; a line still being written waits for the next."""
        try:
            with open(self.path, "rb") as source:
                source.seek(self._offset)
                data = source.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        events = []
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not ours: the file is the sidecar's alone, but never trust a line
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                events.append(event)
        return events


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event in the file at ``path`` (none if it does not exist)."""
    return EventReader(path).new_events()
