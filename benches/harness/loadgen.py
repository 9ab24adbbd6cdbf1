"""The load generators wrk and fortio: one run each, pinned to a core, parsed into numbers."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from harness.common import Json, first_match, run_quiet


def header_flags(headers: list[str]) -> list[str]:
    """["-H", "Name: value", ...]: wrk's and fortio's flag for a request header."""
    return [arg for h in headers for arg in ("-H", h)]


def run_wrk(
    wrk: str, url: str, seconds: float, conns: int, cpu: int, *, headers: list[str] | None = None
) -> Json:
    argv = ["taskset", "-c", str(cpu), wrk, "-t1", f"-c{conns}", f"-d{seconds:g}s"]
    argv += [*header_flags(headers or []), url]
    res = run_quiet(argv, timeout=seconds + 60)
    out = res.stdout + res.stderr
    done = re.search(r"(\d+) requests in", out)
    if res.returncode != 0 or not done:
        raise RuntimeError(f"wrk failed ({res.returncode}):\n{out}")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    kinds = ("connect", "read", "write", "timeout")
    return {
        "requests": int(done.group(1)),
        "rps": float(first_match(r"Requests/sec:\s+([\d.]+)", out)),
        "socket_errors": dict(zip(kinds, map(int, sock.groups()), strict=True)) if sock else {},
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def wrk_errors(result: Json) -> int:
    socket_errors: dict[str, int] = result["socket_errors"]
    return int(result["non_2xx"]) + sum(socket_errors.values())


def run_fortio(
    fortio: str,
    url: str,
    *,
    rate: int,
    seconds: float,
    conns: int,
    cpu: int,
    headers: list[str] | None = None,
) -> Json:
    """Fixed-rate run; latencies in µs (fortio's histogram, 10 µs resolution)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = ["taskset", "-c", str(cpu), fortio, "load", "-quiet", "-uniform"]
        argv += ["-qps", str(rate), "-c", str(conns), "-t", f"{seconds:g}s", "-r", "0.00001"]
        argv += ["-p", "50,99,99.9", "-json", out.name, *header_flags(headers or []), url]
        res = run_quiet(argv, timeout=seconds + 60)
        if res.returncode != 0:
            raise RuntimeError(f"fortio failed ({res.returncode}):\n{res.stdout}{res.stderr}")
        data = json.loads(Path(out.name).read_text())
    hist = data["DurationHistogram"]
    pct = {float(p["Percentile"]): p["Value"] * 1e6 for p in hist["Percentiles"]}
    ok = {str(k): v for k, v in data.get("RetCodes", {}).items()}.get("200", 0)
    return {
        "target_rate": rate,
        "actual_rate": data["ActualQPS"],
        "requests": hist["Count"],
        "errors": hist["Count"] - ok,
        "p50_us": pct[50.0],
        "p99_us": pct[99.0],
        "p999_us": pct[99.9],
        "max_us": hist["Max"] * 1e6,
    }
