"""What a run records about itself: the machine, the programs' versions and meshpy's build."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.util
import os
import platform
import struct
import subprocess
from pathlib import Path
from typing import Any

from harness.common import Json, first_match, run_quiet

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
    """Its version, and the commit of the checkout it runs from (a `.venv` in it)."""
    ver = version_of([exe, "--version"], r"(\d+\.\d+\.\d+\S*)")
    checkout = str(Path(exe).parent)
    rev = run_quiet(["git", "-C", checkout, "rev-parse", "--short", "HEAD"])
    if rev.returncode == 0:
        status = ["git", "-C", checkout, "status", "--porcelain", "--untracked-files=no"]
        dirty = "+dirty" if run_quiet(status).stdout.strip() else ""
        ver += f" (git {rev.stdout.strip()}{dirty})"
    return ver


def extension_built() -> str:
    """When meshpy's compiled extension was built (its file's time), if this Python finds
    it: a working tree's "+dirty" alone does not tell one build from another."""
    with contextlib.suppress(ImportError, ValueError):
        spec = importlib.util.find_spec("meshpy._core")
        if spec and spec.origin:
            built = dt.datetime.fromtimestamp(Path(spec.origin).stat().st_mtime, dt.UTC)
            return f", extension built {built:%Y-%m-%d %H:%M:%S} UTC"
    return ""


def elf_section_names(path: Path) -> list[str]:
    """Section names of a 64-bit little-endian ELF file; [] for anything else."""
    with path.open("rb") as f:
        head = f.read(64)
        if head[:6] != b"\x7fELF\x02\x01":
            return []
        (shoff,) = struct.unpack_from("<Q", head, 0x28)
        entsize, count, names_index = struct.unpack_from("<HHH", head, 0x3A)
        f.seek(shoff)
        table = f.read(entsize * count)
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
        headers = [struct.unpack_from("<IIQQQQ", table, i * entsize) for i in range(count)]
        f.seek(headers[names_index][4])
        names = f.read(headers[names_index][5])
    return [names[h[0] : names.index(b"\0", h[0])].decode() for h in headers]


def meshpy_build(exe: str) -> str:
    """ "release", or "debug info" if the extension `exe` loads carries DWARF (a debug build?)."""
    first = Path(exe).read_bytes()[:512].split(b"\n", 1)[0]
    if not first.startswith(b"#!"):
        return "?"
    python = first[2:].decode().split()[0]
    res = run_quiet([python, "-c", "import meshpy._core as c; print(c.__file__)"])
    if res.returncode != 0:
        return "?"
    sections = elf_section_names(Path(res.stdout.strip()))
    return "debug info" if ".debug_info" in sections else "release"


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
