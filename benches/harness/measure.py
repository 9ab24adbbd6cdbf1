"""The measurements on one target: idle memory, fixed-rate latency, wrk rounds, their summary."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.backend import backend_nginx_conf
from harness.common import Json, log
from harness.loadgen import run_fortio, run_wrk, wrk_errors
from harness.net import free_port
from harness.noise import ForeignCpu, wait_for_quiet
from harness.processes import Popen, Processes, failure
from harness.procfs import CLK_TCK, MemorySampler, cpu_ticks, memory_kb, process_tree
from harness.ready import wait_ready


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
    proc: Popen | None = None
    result: Json = field(default_factory=dict)
    rounds: list[Json] = field(default_factory=list)
    foreign: list[float] = field(default_factory=list)  # cores, one per measured step
    headers: list[str] = field(default_factory=list)  # sent by wrk and fortio, e.g. Host

    def procs(self) -> list[Popen]:
        """The processes that serve the target."""
        return [self.proc] if self.proc else []

    def proc_name(self, proc: Popen) -> str:
        """The name `proc` was started (and logs) under."""
        return self.name

    def tree(self) -> list[int]:
        """The processes whose CPU and memory are the target's."""
        return [pid for p in self.procs() for pid in process_tree(p.pid)]

    def cpu_us_per_req(self, ticks0: int, requests: int) -> float | None:
        if not self.proc:
            return None
        return (cpu_ticks(self.tree()) - ticks0) / CLK_TCK * 1e6 / max(1, requests)

    def read_idle_memory(self) -> None:
        """After a second's rest, the target's RSS and PSS before any load."""
        time.sleep(1.0)
        self.result["rss_idle_kb"], self.result["pss_idle_kb"] = memory_kb(self.tree())


def start_backend(b: Bench, extra_locations: str = "") -> None:
    b.backend_port = free_port()
    conf = backend_nginx_conf(b.tmp, b.backend_port, extra_locations)
    argv = [b.tools["nginx"], "-p", f"{b.tmp}/", "-c", str(conf)]
    proc = b.procs.start("backend", argv, b.settings.load_cpu)
    wait_ready(b.procs, "backend", proc, [f"http://127.0.0.1:{b.backend_port}/"])


def check_alive(b: Bench, t: Target) -> None:
    for proc in t.procs():
        if proc.poll() is not None:
            which = t.proc_name(proc)
            raise failure(f"{which} exited with {proc.returncode}", b.procs.log_tail(which))


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
