"""What a run records about itself: the machine it ran on and the programs' versions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from harness.common import Json, first_match, run_quiet
from harness.paths import REPO

# Per program: the flag that prints its version, and the pattern that finds it there.
VERSION_FLAGS = {
    "envoy": ("--version", r"version: \w+/(\d+\.\d+\.\d+)/"),
    "nginx": ("-v", r"nginx/(\S+)"),
    "haproxy": ("-v", r"version (\S+)"),
    "wrk": ("-v", r"wrk (\S+)"),
    "fortio": ("version", r"(\d+\.\d+\.\d+)"),
    "slowhttptest": ("-h", r"version (\S+)"),
}


def version_of(argv: list[str], pattern: str) -> str:
    try:
        res = run_quiet(argv, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return first_match(pattern, res.stdout + res.stderr)


def program_version(name: str, exe: str) -> str:
    """The version of the program `name` (a key of VERSION_FLAGS) installed at `exe`."""
    flag, pattern = VERSION_FLAGS[name]
    return version_of([exe, flag], pattern)


def load_versions(tools: dict[str, str]) -> dict[str, str]:
    """The backend's and the load generators' versions, as the proxy benchmarks list them."""
    return {
        "backend nginx": program_version("nginx", tools["nginx"]),
        "wrk": program_version("wrk", tools["wrk"]),
        "fortio": program_version("fortio", tools["fortio"]),
    }


def meshpy_version(exe: str) -> str:
    ver = version_of([exe, "--version"], r"(\d+\.\d+\.\d+\S*)")
    rev = run_quiet(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if rev.returncode == 0:
        status = ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]
        dirty = "+dirty" if run_quiet(status).stdout.strip() else ""
        ver += f" (git {rev.stdout.strip()}{dirty})"
    return ver


def machine_info() -> dict[str, str]:
    model = first_match(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    os_release = Path("/etc/os-release")
    distro = "?"
    if os_release.exists():
        distro = first_match(r'PRETTY_NAME="?([^"\n]+)', os_release.read_text())
    mem_kb = int(first_match(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()))
    return {
        "cpu_model": model,
        "cpus": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "kernel": platform.release(),
        "os": distro,
    }


def run_meta(versions: dict[str, str], settings: Any, **extra: Any) -> Json:
    """A run's "meta" record: date, machine, versions, settings (a dataclass), then `extra`."""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "versions": versions,
        "settings": dataclasses.asdict(settings),
        **extra,
    }
