"""``meshpy proxy run --service NAME``: one sidecar in the foreground until SIGTERM/SIGINT.

Lines on stderr, whose format tests and tools rely on::

    meshpy sidecar: registered default/payment instance 6f1c...
    meshpy proxy: admin 127.0.0.1:9901, inbound 127.0.0.1:15006, outbound 127.0.0.1:15001
    meshpy sidecar: ready
    meshpy sidecar: draining for up to 10s
    meshpy sidecar: stopped

and the identity, config and lease threads log what they do as ``meshpy sidecar: ...``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType
from typing import TextIO

from meshpy import _core
from meshpy.proxyrun import format_addresses
from meshpy.sidecar.controlplane import ControlPlaneError
from meshpy.sidecar.runner import Sidecar, SidecarOptions

__all__ = ["run"]

EXIT_FAILED = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run(
    options: SidecarOptions,
    *,
    drain_s: float,
    addresses_json: bool = False,
    err: TextIO = sys.stderr,
    out: TextIO = sys.stdout,
) -> int:
    """Run the sidecar until SIGTERM/SIGINT; returns the exit code."""
    _log_to(err)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        return _serve(
            options, stop, drain_s=drain_s, addresses_json=addresses_json, err=err, out=out
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(
    options: SidecarOptions,
    stop: threading.Event,
    *,
    drain_s: float,
    addresses_json: bool,
    err: TextIO,
    out: TextIO,
) -> int:
    def say(line: str) -> None:
        err.write(f"meshpy sidecar: {line}\n")
        err.flush()

    try:
        sidecar = Sidecar(options)
        sidecar.start()
    except (ControlPlaneError, _core.MeshpyError, ValueError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_FAILED
    spec = sidecar.registrar.spec
    say(f"registered {spec.namespace}/{spec.service} instance {sidecar.registrar.instance}")
    announced: dict[str, str] = {}
    was_ready = False
    while not stop.wait(0.1):
        addresses = sidecar.proxy.addresses()
        if addresses != announced:
            announced = addresses
            err.write(f"meshpy proxy: {format_addresses(addresses)}\n")
            err.flush()
            if addresses_json:
                out.write(json.dumps(addresses) + "\n")
                out.flush()
        ready = sidecar.ready()
        if ready != was_ready:
            say("ready" if ready else "not ready")
            was_ready = ready
    say(f"draining for up to {drain_s:g}s")
    sidecar.stop(drain_s)
    say("stopped")
    return 0


def _log_to(err: TextIO) -> None:
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("meshpy sidecar: %(message)s"))
    root = logging.getLogger("meshpy.sidecar")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
