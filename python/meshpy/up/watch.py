"""Watch a started mesh: about once a second, each instance's state and traffic, as a table.

The registry gives every instance's state, each sidecar's /metrics the traffic into its
instance; both are asked in parallel. The watch ends on a stop, at the end of the
duration, or when the control plane exits (a failure).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from meshpy.up.controlplane import StartError
from meshpy.up.display import Row, fmt_pct
from meshpy.up.state import UpState

__all__ = ["rows", "watch"]


def watch(up: UpState) -> None:
    """Show the mesh until it is to stop, then read the registry and the sidecars once more."""
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="meshpy-up")
    try:
        _watch(up, pool)
        _collect(up, pool)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _watch(up: UpState, pool: ThreadPoolExecutor) -> None:
    watch_start = time.monotonic()
    next_tick = watch_start
    while not up.stopping.is_set():
        if up.server is not None:
            try:
                up.server.check()
            except StartError as exc:
                up.failed = True
                up.out.error(str(exc))
                return
        for inst in up.instances:
            inst.read_events()
            code = inst.child.proc.poll()
            if code is not None and inst.exited is None:
                inst.exited = code
                inst.state = f"exited {code}"
                up.failed = up.failed or code != 0
                up.out.say(
                    f"{inst.replica.name} exited with code {code}; its log: {inst.child.log_path}"
                )
        up.procs.look()
        up.procs.reap()
        _collect(up, pool)
        up.out.show(_title_line(up), rows(up), _footer(up))
        duration = up.options.duration
        if duration is not None and time.monotonic() - watch_start >= duration:
            return
        next_tick += up.options.interval
        up.stopping.wait(max(0.0, next_tick - time.monotonic()))


def _collect(up: UpState, pool: ThreadPoolExecutor) -> None:
    """Registry states and a metrics scrape of every sidecar, in parallel."""
    jobs: list[Callable[[], None]] = []
    if up.server is not None:
        jobs.append(partial(up.server.refresh_states, up.instances))
    if up.sidecars is not None:
        jobs += [partial(inst.scrape, up.sidecars) for inst in up.instances]
    for future in [pool.submit(job) for job in jobs]:
        with contextlib.suppress(Exception):
            future.result(timeout=5)


def _title_line(up: UpState) -> str:
    elapsed = time.monotonic() - up.started_at
    url = up.server.url if up.server is not None else ""
    return f"meshpy up: {up.title} — control plane {url} — {elapsed:.0f}s"


def _footer(up: UpState) -> str:
    by_version: dict[str, dict[str | None, float]] = {}
    for inst in up.instances:
        shares = by_version.setdefault(inst.replica.service, {})
        version = inst.replica.version
        shares[version] = shares.get(version, 0.0) + inst.window().rps
    parts = []
    for service, versions in by_version.items():
        total = sum(versions.values())
        if len(versions) > 1 and total > 0:
            split = " / ".join(f"{v} {fmt_pct(rps / total)}" for v, rps in versions.items())
            parts.append(f"{service}: {split}")
    parts += [f"rollout {job.name}: {job.status}" for job in up.rollouts]
    return "; ".join(parts)


def rows(up: UpState) -> list[Row]:
    """The table's rows, by service (in the mesh file's order), version, replica."""
    order = {name: i for i, name in enumerate(up.mesh.services)}
    totals: dict[str, float] = {}
    windows = {id(i): i.window() for i in up.instances}
    for inst in up.instances:
        service = inst.replica.service
        totals[service] = totals.get(service, 0.0) + windows[id(inst)].rps
    ordered = sorted(
        up.instances,
        key=lambda i: (order[i.replica.service], i.replica.version or "", i.replica.name),
    )
    table = []
    for inst in ordered:
        window = windows[id(inst)]
        total = totals[inst.replica.service]
        table.append(
            Row(
                service=inst.replica.service,
                version=inst.replica.version,
                name=inst.replica.name,
                instance=inst.instance_id,
                state=inst.state,
                rates=window,
                share=window.rps / total if total > 0 else None,
                restarts=inst.restarts,
            )
        )
    return table
