"""Other processes' CPU use: waiting for a quiet machine, and measuring what others used."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from harness.common import log
from harness.procfs import CLK_TCK, cpu_ticks, process_tree

NOISY_CORES = 0.05  # foreign CPU (in cores) above which a run is flagged


def system_ticks() -> tuple[int, int]:
    """(user+nice+system, total) clock ticks of all CPUs, from /proc/stat."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(vals[:3]), sum(vals[:8])


def own_ticks() -> int:
    """CPU ticks of this script and everything it started, live or reaped."""
    live = cpu_ticks(process_tree(os.getpid()))
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return live + round((reaped.ru_utime + reaped.ru_stime) * CLK_TCK)


class ForeignCpu:
    """CPU used by processes this script did not start, over an interval.

    Other work on the machine (a build, say) skews every number; measuring
    it lets a noisy run be flagged rather than trusted.
    """

    def __init__(self) -> None:
        self.sys0, self.all0 = system_ticks()
        self.own0 = own_ticks()

    def cores(self) -> float:
        """Average number of cores kept busy by other processes."""
        sys1, all1 = system_ticks()
        foreign = (sys1 - self.sys0) - (own_ticks() - self.own0)
        wall = max(1, all1 - self.all0) / (os.cpu_count() or 1)
        return max(0.0, foreign / wall)


def wait_for_quiet(max_wait: float) -> None:
    """Wait up to max_wait s until other processes use < NOISY_CORES."""
    deadline = time.monotonic() + max_wait
    while True:
        probe = ForeignCpu()
        time.sleep(1.0)
        load = probe.cores()
        if load < NOISY_CORES or time.monotonic() >= deadline:
            return
        log(f"  other processes keep {load:.2f} cores busy; waiting")
