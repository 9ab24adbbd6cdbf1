"""Stop a mesh in order: the sidecars, then the control plane; SIGKILL what outlives its deadline.

The sidecars get SIGTERM first (each deregisters, drains and stops its app), then their
join tokens are revoked and the control plane gets SIGTERM. Whatever still runs after
its deadline (or a second signal) gets SIGKILL, and every process seen in the tree is
checked gone.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess

from meshpy.up.procs import Child
from meshpy.up.state import UpState

__all__ = ["stop"]

SIDECAR_STOP_S = 30.0
"""SIGTERM to SIGKILL for sidecars: their drain (10 s) and their app's stop grace (10 s)."""
SERVER_STOP_S = 15.0


def stop(up: UpState) -> bool:
    """Stop everything in order; returns whether all went cleanly."""
    sidecars = [i.child for i in up.instances]
    if up.instances and up.sidecars is not None:
        # Asked before they stop, for the summary's mTLS line.
        with contextlib.suppress(Exception):
            for inst in up.instances:
                inst.read_identity(up.sidecars)
    if any(c.running() for c in sidecars):
        up.out.say(f"stopping {sum(c.running() for c in sidecars)} instances")
    clean = _stop_children(up, sidecars, SIDECAR_STOP_S)
    for inst in up.instances:
        code = inst.child.proc.returncode
        if code not in (0, None, -signal.SIGKILL) and inst.exited is None:
            clean = False
            up.out.error(
                f"{inst.child.name} exited with code {code}; its log: {inst.child.log_path}"
            )
    if up.server is not None:
        up.server.revoke_tokens([token_id for token_id, _ in up.tokens.values()])
        clean = _stop_children(up, [up.server.child], SERVER_STOP_S) and clean
    left_procs = up.procs.kill_left()
    if left_procs:
        clean = False
        pids = ", ".join(str(p.pid) for p in left_procs)
        up.out.error(f"processes left running after SIGKILL: {pids}")
    if up.server is not None or up.instances:
        up.out.say("stopped" if clean else "stopped, not cleanly")
    return clean


def _stop_children(up: UpState, children: list[Child], timeout: float) -> bool:
    """SIGTERM, then SIGKILL after ``timeout`` (or a second signal); whether none needed it."""
    left = up.procs.stop(children, timeout, hurry=up.hurry)
    why = "on a second signal" if up.hurry.is_set() else f"{timeout:g}s after SIGTERM"
    for child in left:
        up.out.error(f"{child.name} still running {why}: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            child.proc.kill()
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5)
    return not left
