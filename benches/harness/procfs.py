"""Readings from /proc: process trees, their CPU time and memory, and each core's busy time."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from harness.common import first_match

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 (state) on."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants (children found by ppid)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = proc_stat(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


def cpu_ticks(pids: list[int]) -> int:
    """utime+stime of the processes (all their threads), in clock ticks."""
    total = 0
    for pid in pids:
        fields = proc_stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total


def memory_kb(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in KiB summed over the processes, from smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        rss += int(first_match(r"(?m)^Rss:\s+(\d+)", text + "\nRss: 0"))
        pss += int(first_match(r"(?m)^Pss:\s+(\d+)", text + "\nPss: 0"))
    return rss, pss


def start_time(pid: int) -> str | None:
    fields = proc_stat(pid)
    return fields[19] if fields else None


class MemorySampler(threading.Thread):
    """Samples RSS/PSS of the processes `pids()` returns every `interval` s; keeps the max.

    `pids` is called at each sample (a process tree, say), so children that
    come and go are counted while they live.
    """

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pids, self.interval = pids, interval
        self.max_rss = self.max_pss = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            rss, pss = memory_kb(self.pids())
            self.max_rss, self.max_pss = max(self.max_rss, rss), max(self.max_pss, pss)
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()


def core_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) clock ticks from /proc/stat (busy = not idle or iowait)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        match = re.match(r"cpu(\d+)\s+(.*)", line)
        if match:
            vals = [int(v) for v in match.group(2).split()[:8]]
            out[int(match.group(1))] = (sum(vals) - vals[3] - vals[4], sum(vals))
    return out


def core_busy(before: dict[int, tuple[int, int]], cpu: int) -> float:
    """The share of `cpu` busy since the `core_ticks()` reading `before`."""
    busy0, total0 = before[cpu]
    busy1, total1 = core_ticks()[cpu]
    return (busy1 - busy0) / max(1, total1 - total0)
