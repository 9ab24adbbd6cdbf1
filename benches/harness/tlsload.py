"""The Go handshake client benches/tlsload: building it, its Go version, and one run of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from harness.common import Json, log, run_quiet
from harness.identities import SERVER_ID, Pki
from harness.paths import BENCH_DIR, TOOLS_DIR
from harness.versions import version_of

TLSLOAD_SRC = BENCH_DIR / "tlsload"
TLSLOAD_EXE = TOOLS_DIR / "tlsload"


@dataclass
class HandshakeSettings:
    seconds: float
    connections: int
    curves: str


def find_go() -> str | None:
    return shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")


def ensure_tlsload() -> str:
    """Build benches/tlsload into benches/.tools unless the binary is up to date."""
    sources = [TLSLOAD_SRC / "main.go", TLSLOAD_SRC / "go.mod"]
    newest = max(src.stat().st_mtime for src in sources)
    if TLSLOAD_EXE.exists() and TLSLOAD_EXE.stat().st_mtime >= newest:
        return str(TLSLOAD_EXE)
    go = find_go()
    if not go:
        sys.exit("Go is needed to build benches/tlsload (https://go.dev/dl/)")
    log("building benches/tlsload")
    TOOLS_DIR.mkdir(exist_ok=True)
    env = dict(os.environ, GOTOOLCHAIN="local", CGO_ENABLED="0")
    argv = [go, "build", "-trimpath", "-o", str(TLSLOAD_EXE), "."]
    subprocess.run(argv, cwd=TLSLOAD_SRC, env=env, check=True)
    return str(TLSLOAD_EXE)


def go_version() -> str:
    go = find_go()
    return version_of([go, "version"], r"go version go(\S+)") if go else "?"


def run_tlsload(
    exe: str, port: int, pki: Pki, h: HandshakeSettings, *, seconds: float, cpu: int
) -> Json:
    """One run of the Go client against an mTLS listener, pinned to `cpu`; its JSON report."""
    argv = ["taskset", "-c", str(cpu), exe]
    argv += ["-addr", f"127.0.0.1:{port}", "-ca", str(pki.root)]
    argv += ["-cert", str(pki.client.chain), "-key", str(pki.client.key), "-spiffe", SERVER_ID]
    argv += ["-c", str(h.connections), "-d", f"{seconds:g}s", "-curves", h.curves]
    res = run_quiet(argv, timeout=seconds + 60)
    try:
        out: Json = json.loads(res.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"tlsload failed ({res.returncode}):\n{res.stderr}") from None
    if out["ok"] == 0:
        raise RuntimeError(f"tlsload: no handshake succeeded: {out.get('first_error')}")
    return out
