"""The target's memory: VmRSS of its processes, sampled in a thread."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.security.slowclients.common import SAMPLE_INTERVAL_S


def vm_rss_kb(pids: Iterable[int]) -> int:
    """VmRSS summed over the processes (/proc/PID/status), in KiB; gone ones count 0."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


class RssSampler:
    """Samples the VmRSS of the processes `pids()` names every `SAMPLE_INTERVAL_S`."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(5)

    def loop(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(SAMPLE_INTERVAL_S)

    def sample(self) -> int:
        kb = vm_rss_kb(self.pids())
        self.samples.append((round(time.monotonic() - self.started, 2), kb))
        return kb

    @property
    def peak_kb(self) -> int:
        return max((kb for _, kb in self.samples), default=0)
