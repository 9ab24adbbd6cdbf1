"""A sidecar in the foreground until SIGTERM/SIGINT: `meshpy run`, `meshpy proxy run --service`.

The CLI parses and checks the options, then replaces itself with ``python -m
meshpy.sidecar`` (``exec_sidecar``): the process that stays, next to every app, imports
only the standard library and the proxy core, not the CLI's libraries. The join token
travels in the environment (``MESHPY_TOKEN``), never on a command line, and the app does
not get it.

Lines on stderr, for people (tools read ``--events``, below)::

    meshpy sidecar: registered default/payment instance 6f1c...
    meshpy proxy: admin 127.0.0.1:9901, inbound 127.0.0.1:15006, outbound 127.0.0.1:15001
    meshpy sidecar: ready
    meshpy sidecar: draining for up to 10s
    meshpy sidecar: stopped

and the identity, config, lease and app threads log what they do as ``meshpy sidecar: ...``.
Tools read ``--events FILE`` instead (``meshpy.sidecar.events``): log lines may be reworded.
SIGHUP, SIGUSR1 and SIGUSR2 are passed on to the app. When the app exits for good
(``--restart never``, or ``on-failure`` after a clean exit), the sidecar stops too and
exits with the app's code.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, TextIO

from meshpy import _core
from meshpy.addresses import format_addresses
from meshpy.sidecar.controlplane import ControlPlaneError
from meshpy.sidecar.runner import Sidecar, SidecarOptions
from meshpy.sidecar.supervisor import AppSpec

__all__ = ["exec_sidecar", "options_from_json", "options_to_json", "run"]

EXIT_FAILED = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_FORWARDED = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


def options_to_json(options: SidecarOptions, *, drain_s: float, addresses_json: bool) -> str:
    """The options as the light process reads them, without the token."""
    data = dataclasses.asdict(options)
    data.pop("token")
    return json.dumps({"options": data, "drain_s": drain_s, "addresses_json": addresses_json})


def options_from_json(text: str, token: str) -> tuple[SidecarOptions, float, bool]:
    """Inverse of ``options_to_json``."""
    data: dict[str, Any] = json.loads(text)
    fields = dict(data["options"])
    app = fields.pop("app")
    options = SidecarOptions(
        **fields,
        token=token,
        app=AppSpec(**{**app, "command": tuple(app["command"])}) if app else None,
    )
    return options, float(data["drain_s"]), bool(data["addresses_json"])


def exec_sidecar(options: SidecarOptions, *, drain_s: float, addresses_json: bool) -> None:
    """Replace this process with the light sidecar process; does not return."""
    os.environ["MESHPY_TOKEN"] = options.token
    sys.stdout.flush()
    sys.stderr.flush()
    payload = options_to_json(options, drain_s=drain_s, addresses_json=addresses_json)
    os.execv(sys.executable, [sys.executable, "-m", "meshpy.sidecar", payload])


def run(
    options: SidecarOptions,
    *,
    drain_s: float,
    addresses_json: bool = False,
    err: TextIO = sys.stderr,
    out: TextIO = sys.stdout,
) -> int:
    """Run the sidecar until SIGTERM/SIGINT (or its app is gone); returns the exit code."""
    _log_to(err)
    stop = threading.Event()
    sidecar: list[Sidecar] = []

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    def on_forwarded(signum: int, _frame: FrameType | None) -> None:
        if sidecar and sidecar[0].app is not None:
            sidecar[0].app.signal(signum)

    previous = {sig: signal.signal(sig, on_stop) for sig in _STOP_SIGNALS}
    previous.update({sig: signal.signal(sig, on_forwarded) for sig in _FORWARDED})
    try:
        return _serve(
            options, stop, sidecar, drain_s=drain_s, addresses_json=addresses_json, err=err, out=out
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(
    options: SidecarOptions,
    stop: threading.Event,
    holder: list[Sidecar],
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
        sidecar = Sidecar(options, base_env=os.environ)
        holder.append(sidecar)
        sidecar.start()
    except (ControlPlaneError, _core.MeshpyError, OSError, ValueError) as exc:
        err.write(f"error: {exc}\n")
        return EXIT_FAILED
    spec = sidecar.registrar.spec
    events = sidecar.events
    if sidecar.registrar.instance is not None:
        say(f"registered {spec.namespace}/{spec.service} instance {sidecar.registrar.instance}")
    else:
        say(f"serving {spec.namespace}/{spec.service} from the saved state; registering later")
    announced: dict[str, str] = {}
    was_ready = False
    app_gone = False
    while not stop.wait(0.1):
        addresses = sidecar.proxy.addresses()
        if addresses != announced:
            announced = addresses
            err.write(f"meshpy proxy: {format_addresses(addresses)}\n")
            err.flush()
            events.emit("addresses", addresses=addresses)
            if addresses_json:
                out.write(json.dumps(addresses) + "\n")
                out.flush()
        ready = sidecar.ready()
        if ready != was_ready:
            say("ready" if ready else "not ready")
            events.emit("ready" if ready else "not_ready")
            was_ready = ready
        if sidecar.app is not None and sidecar.app_finished():
            app_gone = True
            break
    say(f"draining for up to {drain_s:g}s")
    events.emit("draining")
    sidecar.stop(drain_s)
    say("stopped")
    events.emit("stopped")
    if app_gone and sidecar.app is not None:
        return sidecar.app.returncode or 0
    return 0


def _log_to(err: TextIO) -> None:
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("meshpy sidecar: %(message)s"))
    root = logging.getLogger("meshpy.sidecar")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
