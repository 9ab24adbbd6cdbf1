"""What the backend, the attacker and the benign client share: constants, quantiles, limits."""

from __future__ import annotations

import contextlib
import math
import resource
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Json = dict[str, Any]

HELLO = b"hello\n"
"""What the backend answers to every request but `LARGE_PATH`."""
LARGE_PATH = "/large"
"""The backend answers this path with a large body (`--large-bytes`, or ``?bytes=N``)."""


def largest_send_buffer(tcp_wmem: Path = Path("/proc/sys/net/ipv4/tcp_wmem")) -> int:
    """The most bytes Linux lets one TCP socket queue for sending (tcp_wmem's maximum,
    which the kernel's autotuning may reach); 4 MiB, the default, if it can't be read."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(tcp_wmem.read_text().split()[2])
    return 4 * 1024 * 1024


LARGE_BYTES = max(2 * 1024 * 1024, 2 * largest_send_buffer())
"""Twice what the kernel can queue on the target's side of a connection: a slow reader's
response must block the target's writes, not vanish whole into the kernel (on loopback its
send buffer grows to megabytes, and how much of a body fits varies from run to run)."""
ATTACKS = ("slow_head", "slow_body", "slow_read")
SAMPLE_INTERVAL_S = 0.5
"""How often the RSS sampler and the attack's kernel-state watcher look."""

PROGRAM = Path(__file__).resolve().parent
"""This package: ``python PROGRAM backend ...`` or ``python PROGRAM attack ...`` runs its
command line (`__main__.py`) with the interpreter given."""


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th quantile (0 <= q <= 1), linearly interpolated; None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
