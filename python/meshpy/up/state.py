"""What one ``meshpy up`` shares across start, watch and stop: options, processes, instances."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshpy.up.controlplane import ControlPlane
from meshpy.up.display import Output
from meshpy.up.instance import Instance
from meshpy.up.meshfile import MeshFile
from meshpy.up.procs import Processes
from meshpy.up.rollouts import Job

if TYPE_CHECKING:
    import httpx

__all__ = ["Options", "UpState"]


@dataclass(frozen=True)
class Options:
    """How ``meshpy up`` runs a mesh file."""

    home: Path
    listen: str = "127.0.0.1:15010"
    base_dir: Path = field(default_factory=Path.cwd)
    """Where the instances run (relative paths in their commands start here)."""
    ready_timeout: float = 60.0
    duration: float | None = None
    interval: float = 1.0


@dataclass
class UpState:
    """The mesh file, what runs of it, and the events that end the run."""

    mesh: MeshFile
    resources: list[Path]
    options: Options
    out: Output
    title: str
    home: Path
    procs: Processes
    server: ControlPlane | None = None
    sidecars: httpx.Client | None = None
    """Asks the sidecars' admin endpoints, once the control plane is ready."""
    instances: list[Instance] = field(default_factory=list)
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    """service -> (token id, token)"""
    rollouts: list[Job] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    hurry: threading.Event = field(default_factory=threading.Event)
    """A second signal: stop without waiting for the drains."""
    ending: threading.Event = field(default_factory=threading.Event)
    """Set as the watch ends, however it does: the rollouts stop (and roll back)."""
    failed: bool = False
    started_at: float = field(default_factory=time.monotonic)
    slowest_traces: list[dict[str, Any]] = field(default_factory=list)
    """The run's slowest traces (the trace API's summaries), read before the server stops."""
