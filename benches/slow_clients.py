#!/usr/bin/env python3
"""Slow clients (slow head, slow body, slow read) against meshpy, nginx and HAProxy.

Each target forwards to the same backend (tests/security/slowclients/backend.py: asyncio,
its own process, ``hello`` to every request, a large body to ``/large``, request bodies
read as they come). The large body is twice the kernel's largest send buffer, so that a
slow reader blocks the target's writes. One attack at a time holds ``--connections`` slow
connections (1,000) open for ``--duration`` seconds, reopening each one the target closes:

- slow head (slowloris): a request line, then one header line every ``--interval`` s,
  never the blank line that ends the head;
- slow body (R.U.D.Y.): a POST with ``Content-Length: 1000000``, then 4 bytes of body
  every ``--interval`` s;
- slow read: GET ``/large`` with the smallest receive buffer, reading 5 bytes every
  ``--read-interval`` s.

The attacks are run twice if Debian's slowhttptest is installed: by our attacker
(tests/security/slowclients/) and by ``slowhttptest -H / -B / -X`` with the same
connections and intervals. slowhttptest does not reopen connections, and it finishes its
slow requests itself as its test length nears, so it is given ten times the attack's
length and interrupted when the attack is over. The target's cuts are then the
connections it counts as closed or reset (errors), or all of them when it exits on its
own because none is left (it does not count the last ones then). For slow read this is
a lower bound: it sees a close only after reading what was queued before it, where our
attacker also watches /proc/net/tcp. Alongside each
attack a benign client sends 60 requests/s (GET over keep-alive, POST over keep-alive,
GET on a new connection, 20/s each) and the target's RSS (VmRSS summed over its
processes) is sampled every 0.5 s, then read once more ``--after`` s after the attack.

Each target is started afresh for every attack (so each starts from the same memory)
and pinned to ``--proxy-cpu``; backend, attackers, benign client and this script share
``--load-cpu``. Every target runs one worker and the same timeouts, meshpy's defaults:

| meshpy listener timeout | nginx | HAProxy ``timeout`` |
| --- | --- | --- |
| ``request_head`` 10 s (whole head) | ``client_header_timeout 10s`` | ``http-request 10s`` |
| ``body_progress`` 30 s (longest gap) | ``client_body_timeout 30s`` | ``client 30s`` |
| ``send`` 30 s (longest stalled write) | ``send_timeout 30s`` | (the same ``client``) |
| ``request`` 15 s (to response headers) | ``proxy_read_timeout 15s`` | ``server 15s`` |
| ``idle`` 300 s | ``keepalive_timeout 300s`` | ``http-keep-alive 300s`` |

meshpy's config sets none of them: it runs with its defaults (before request_head,
body_progress and send existed, only request and idle). Otherwise each keeps its
defaults: nginx buffers request bodies before forwarding them and buffers responses
(to temporary files, in the run's directory) when the client is slower than the
backend; HAProxy streams both with its 16 KiB buffers; meshpy streams both.

Reported per target and attack: the benign client's success and p99 latency, RSS at
the start, at its peak and ``--after`` s after the attack, the connections the target
cut out of those opened, and the median time from opening one to its cut (a cut is a
close, a reset or any reply, seen by the attacker or in /proc/net/tcp). The CPU used
by other processes during each round is recorded: on a shared machine it skews the
latencies. Run: ``python3 benches/slow_clients.py [--quick] [--write-readme]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.cli import add_max_wait_idle, exit_on_sigterm, names
from harness.common import Json, log
from harness.meshpy_conf import meshpy_config, meshpy_launch
from harness.net import free_port
from harness.noise import NOISY_CORES, ForeignCpu, wait_for_quiet
from harness.processes import Launch, Processes, scratch
from harness.procfs import process_tree
from harness.ready import wait_ready
from harness.report import heading, mib, notes_section, table
from harness.results import publish
from harness.tools import find_exe, find_meshpy, need_setup
from harness.versions import extension_built, meshpy_version, program_version, run_meta
from tests.security.slowclients import (
    ATTACKS,
    LARGE_BYTES,
    AttackPlan,
    Measurement,
    backend_argv,
    measure,
    raise_open_files_limit,
    run_attack_process,
    run_slowhttptest,
    slowhttptest_argv,
    slowhttptest_cut,
    wait_http_hello,
)

TARGETS = ("meshpy", "nginx", "haproxy")
ATTACKERS = ("own", "slowhttptest")
MARK_START = "<!-- slowclients:start -->"
MARK_END = "<!-- slowclients:end -->"
HEAD_TIMEOUT_S, BODY_PROGRESS_S, SEND_S, REQUEST_S, IDLE_S = 10, 30, 30, 15, 300


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------


def nginx_conf(tmp: Path, port: int, backend: int) -> Path:
    temp = tmp / "nginx-temp"
    temp.mkdir(exist_ok=True)
    os.chmod(temp, 0o777)  # nginx's worker may run as another user (root starts it as nobody)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
daemon off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {tmp}/nginx.pid;
error_log stderr error;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    client_header_timeout {HEAD_TIMEOUT_S}s;
    client_body_timeout {BODY_PROGRESS_S}s;
    send_timeout {SEND_S}s;
    keepalive_timeout {IDLE_S}s;
    keepalive_requests 10000000;
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout {REQUEST_S}s;
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
    maxconn 8192

defaults
    mode http
    maxconn 8192
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout http-request {HEAD_TIMEOUT_S}s
    timeout client {BODY_PROGRESS_S}s
    timeout server {REQUEST_S}s
    timeout http-keep-alive {IDLE_S}s

frontend web
    bind 127.0.0.1:{port}
    default_backend backend

backend backend
    server b1 127.0.0.1:{backend}
""")
    return conf


def launcher(name: str, tools: dict[str, str]) -> Callable[[Path, int, int], Launch]:
    def meshpy(tmp: Path, port: int, backend: int) -> Launch:
        admin = free_port()
        return meshpy_launch(tools["meshpy"], meshpy_config(tmp, port, backend, admin), admin)

    def nginx(tmp: Path, port: int, backend: int) -> Launch:
        conf = nginx_conf(tmp, port, backend)
        return Launch([tools["nginx"], "-p", f"{tmp}/", "-c", str(conf)], [])

    def haproxy(tmp: Path, port: int, backend: int) -> Launch:
        return Launch([tools["haproxy"], "-db", "-f", str(haproxy_conf(tmp, port, backend))], [])

    launchers: dict[str, Callable[[Path, int, int], Launch]] = {
        "meshpy": meshpy,
        "nginx": nginx,
        "haproxy": haproxy,
    }
    return launchers[name]


def find_tools(targets: list[str], attackers: list[str]) -> dict[str, str]:
    """The targets' programs (`make bench-setup` installs nginx and HAProxy) and
    slowhttptest, if installed and asked for."""
    tools: dict[str, str] = {}
    for name in ("nginx", "haproxy"):
        if name in targets:
            tools[name] = find_exe(name) or need_setup(name)
    if "meshpy" in targets:
        tools["meshpy"] = find_meshpy() or sys.exit(
            "meshpy not found (.venv/bin/meshpy or PATH): run `make build`, "
            "or leave it out with --targets nginx,haproxy"
        )
    if "slowhttptest" in attackers:
        exe = find_exe("slowhttptest")
        if exe:
            tools["slowhttptest"] = exe
        else:
            log("slowhttptest not installed (Debian's slowhttptest): its runs are skipped")
    return tools


def versions(tools: dict[str, str]) -> dict[str, str]:
    found = {"python (backend, attacker)": sys.version.split()[0]}
    if "meshpy" in tools:
        found["meshpy"] = meshpy_version(tools["meshpy"]) + extension_built()
    for name in ("nginx", "haproxy", "slowhttptest"):
        if name in tools:
            found[name] = program_version(name, tools[name])
    return found


# ---------------------------------------------------------------------------
# One round: a fresh target, one attack, the benign client, memory
# ---------------------------------------------------------------------------


@dataclass
class Settings:
    connections: int
    duration_s: float
    after_s: float
    interval_s: float
    read_interval_s: float
    read_bytes: int
    large_bytes: int
    body_length: int
    open_rate: float
    benign_rate: float
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


def plan_for(s: Settings, kind: str) -> AttackPlan:
    reading = kind == "slow_read"
    return AttackPlan(
        kind=kind,
        connections=s.connections,
        duration_s=s.duration_s,
        interval_s=s.read_interval_s if reading else s.interval_s,
        open_rate=s.open_rate,
        body_length=s.body_length,
        read_bytes=s.read_bytes,
        large_bytes=s.large_bytes,
    )


def own_attack(b: Bench, plan: AttackPlan, port: int) -> Callable[[], Json]:
    out = b.tmp / f"attack-{plan.kind}.json"
    out.unlink(missing_ok=True)
    argv = plan.argv(f"127.0.0.1:{port}", out)
    return lambda: run_attack_process(argv, out, plan.duration_s + 60, b.settings.load_cpu)


def slowhttptest_attack(b: Bench, plan: AttackPlan, port: int) -> Callable[[], Json]:
    prefix = b.tmp / f"slowhttptest-{plan.kind}"
    argv = slowhttptest_argv(b.tools["slowhttptest"], plan, f"http://127.0.0.1:{port}/", prefix)
    pinned = ["taskset", "-c", str(b.settings.load_cpu), *argv]

    def run() -> Json:
        counts = run_slowhttptest(
            pinned, prefix.with_suffix(".csv"), prefix.with_suffix(".log"), plan.duration_s
        )
        how = {"closed": counts.get("closed", 0), "reset": counts.get("errors", 0)}
        if counts.get("exit_status") == "No open connections left":
            how = {f"gone by {counts.get('ended_s', '?')} s": plan.connections}
        return {
            "opened": plan.connections,
            "cut": slowhttptest_cut(counts, plan.connections),
            "median_cut_after_s": None,
            "how": {name: n for name, n in how.items() if n},
            "slowhttptest": counts,
            "argv": argv,
        }

    return run


def attack_round(b: Bench, target: str, attacker: str, kind: str) -> Json:
    """Start `target`, run one attack on it with the benign client and the RSS sampler,
    stop it; the round's figures, or {"error": ...}."""
    s = b.settings
    wait_for_quiet(s.max_wait_idle)
    port = free_port()
    launch = launcher(target, b.tools)(b.tmp, port, b.backend_port)
    proc = b.procs.start(target, launch.argv, s.proxy_cpu)
    try:
        wait_ready(b.procs, target, proc, [*launch.ready_urls, f"http://127.0.0.1:{port}/"])
        time.sleep(1.0)
        plan = plan_for(s, kind)
        attack = (own_attack if attacker == "own" else slowhttptest_attack)(b, plan, port)
        audit = ForeignCpu()
        m: Measurement = measure(
            "127.0.0.1",
            port,
            lambda: process_tree(proc.pid),
            attack,
            after_s=s.after_s,
            benign_rate=s.benign_rate,
        )
        result = m.to_json()
        result["foreign_cores"] = audit.cores()
        result["target_exit_code"] = proc.poll()
        if proc.poll() is not None:
            result["target_log"] = b.procs.log_tail(target)
    except RuntimeError as err:
        log(f"{target} {attacker} {kind} failed: {err}")
        return {"error": str(err)}
    finally:
        b.procs.stop(proc)
    benign = result["benign"]
    log(
        f"{target} {attacker} {kind}: benign {benign['success_ratio']:.2%} ok, "
        f"RSS peak {mib(m.rss_peak_kb)} MiB, cut {m.attack['cut']} of {m.attack['opened']}"
    )
    return result


def run_all(
    b: Bench, targets: list[str], attackers: list[str], kinds: list[str]
) -> dict[str, Json]:
    """Every attack on every target in turn (the targets interleaved, attack by attack)."""
    s = b.settings
    b.backend_port = free_port()
    backend = b.procs.start("backend", backend_argv(b.backend_port, s.large_bytes), s.load_cpu)
    wait_http_hello(f"http://127.0.0.1:{b.backend_port}/", backend)
    results = {}
    for attacker in attackers:
        if attacker == "slowhttptest" and "slowhttptest" not in b.tools:
            continue
        for kind in kinds:
            for target in targets:
                results[f"{target} {attacker} {kind}"] = {
                    "target": target,
                    "attacker": attacker,
                    "kind": kind,
                    **attack_round(b, target, attacker, kind),
                }
    return results


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def how_cut(how: dict[str, int]) -> str:
    """How the target ended the connections it cut, most frequent first: "answered" with a
    status, "eof" (closed), "reset", "closed" (seen in /proc/net/tcp before the attacker's
    own socket saw it), "gone" (no longer in /proc/net/tcp)."""
    top = sorted(how.items(), key=lambda kv: -kv[1])[:3]
    named = [(f"answered {name}" if name.isdigit() else name, n) for name, n in top]
    return ", ".join(f"{count:,} {name}" for name, count in named) or "-"


def results_table(results: dict[str, Json], after_s: float) -> str:
    head = ["target", "attacker", "attack", "benign ok %", "benign p99 ms", "RSS start MiB"]
    head += ["RSS peak MiB", f"RSS {after_s:g} s after MiB", "cut / opened", "median s to cut"]
    head += ["how cut", "other load (cores)"]
    rows = []
    for r in results.values():
        name = [r["target"], r["attacker"], r["kind"].replace("_", " ")]
        if "error" in r:
            rows.append([*name, "failed: " + r["error"].splitlines()[0]] + [""] * 9)
            continue
        benign, attack = r["benign"], r["attack"]
        dead = "" if r["target_exit_code"] is None else " (target exited)"
        rows.append(
            [
                *name,
                f"{benign['success_ratio'] * 100:.2f}{dead}",
                fmt(benign["p99_ms"], ".1f"),
                mib(r["rss_start_kb"]),
                mib(r["rss_peak_kb"]),
                mib(r["rss_after_kb"]),
                f"{attack['cut']:,} / {attack['opened']:,}",
                fmt(attack["median_cut_after_s"], ".1f"),
                how_cut(attack["how"]),
                f"{r['foreign_cores']:.2f}",
            ]
        )
    return table(head, rows)


def notes(results: dict[str, Json]) -> list[str]:
    found = []
    for key, r in results.items():
        if "error" in r:
            found.append(f"{key}: failed: {r['error'].splitlines()[0]}")
            continue
        if r["target_exit_code"] is not None:
            found.append(f"{key}: the target exited with {r['target_exit_code']}")
        failures = r["benign"]["failures"]
        if failures:
            listed = ", ".join(f"{why} {n}" for why, n in failures.items())
            found.append(f"{key}: benign failures: {listed}")
        refused = r["attack"].get("connect_failures")
        if refused:
            found.append(f"{key}: attacker connects failed: {refused}")
        probe = r["attack"].get("slowhttptest")
        if probe and probe["available_share"] is not None and probe["available_share"] < 1:
            found.append(
                f"{key}: slowhttptest's probe found the service unavailable in "
                f"{(1 - probe['available_share']) * 100:.0f}% of its seconds"
            )
        if r["foreign_cores"] > NOISY_CORES:
            found.append(
                f"{key}: other processes kept {r['foreign_cores']:.2f} cores busy meanwhile"
            )
    return found


def report(results: dict[str, Json], meta: Json) -> str:
    s = meta["settings"]
    parts = [
        *heading(meta),
        f"Settings: {s['connections']:,} attacking connections for {s['duration_s']:g} s "
        f"(opened at {s['open_rate']:g}/s); slow head and slow body send every "
        f"{s['interval_s']:g} s, slow read takes {s['read_bytes']} bytes every "
        f"{s['read_interval_s']:g} s of a {s['large_bytes'] / 1024 / 1024:g} MiB body; "
        f"benign client 3 x {s['benign_rate']:g} requests/s; RSS read {s['after_s']:g} s "
        f"after the attack. Target on CPU {s['proxy_cpu']}, the rest on CPU {s['load_cpu']}.",
        "",
        results_table(results, s["after_s"]),
    ]
    return "\n".join(parts + notes_section(notes(results), "target"))


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add = p.add_argument
    add("--targets", default=",".join(TARGETS), help="comma-separated subset of %(default)s")
    add("--attackers", default=",".join(ATTACKERS), help="comma-separated subset of %(default)s")
    add("--attacks", default=",".join(ATTACKS), help="comma-separated subset of %(default)s")
    add("--connections", type=int, default=1000, help="attacking connections")
    add("--duration", type=float, default=60.0, help="seconds each attack lasts")
    add("--after", type=float, default=60.0, help="seconds after an attack to read RSS")
    add("--interval", type=float, default=10.0, help="s between sends (slow head, slow body)")
    add("--read-interval", type=float, default=1.0, help="s between reads (slow read)")
    add("--read-bytes", type=int, default=5, help="bytes per read (slow read)")
    add("--large-mib", type=float, default=LARGE_BYTES / 2**20,
        help="MiB of the slow read's body (twice the kernel's largest send buffer)")  # fmt: skip
    add("--body-length", type=int, default=1_000_000, help="Content-Length of the slow body")
    add("--open-rate", type=float, default=500.0, help="attacking connections opened per s")
    add("--benign-rate", type=float, default=20.0, help="requests/s of each benign client")
    add("--proxy-cpu", type=int, default=0, help="core for the target")
    add("--load-cpu", type=int, default=1, help="core for backend, attackers and benign client")
    add_max_wait_idle(p, "round")
    add("--quick", action="store_true", help="smoke test: 15 s attacks, RSS read 5 s after")
    add("--write-readme", action="store_true", help="rewrite the README's slow-client section")
    add("--keep-tmp", action="store_true", help="keep the configs and logs")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.after = 15.0, 5.0
    args.targets = names(args.targets, TARGETS, p, "targets")
    args.attackers = names(args.attackers, ATTACKERS, p, "attackers")
    args.attacks = names(args.attacks, ATTACKS, p, "attacks")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    open_files = raise_open_files_limit()  # the targets and the attackers inherit it
    if open_files < 4 * args.connections:
        log(f"only {open_files} open files allowed: targets may run out at {args.connections}")
    tools = find_tools(args.targets, args.attackers)
    settings = Settings(
        connections=args.connections,
        duration_s=args.duration,
        after_s=args.after,
        interval_s=args.interval,
        read_interval_s=args.read_interval,
        read_bytes=args.read_bytes,
        large_bytes=int(args.large_mib * 1024 * 1024),
        body_length=args.body_length,
        open_rate=args.open_rate,
        benign_rate=args.benign_rate,
        proxy_cpu=args.proxy_cpu,
        load_cpu=args.load_cpu,
        max_wait_idle=args.max_wait_idle,
    )
    meta = run_meta(versions(tools), settings)
    os.sched_setaffinity(0, {args.load_cpu})  # keep this script off the target's core
    with scratch("meshpy-slowclients-", args.keep_tmp, "configs and logs") as (tmp, procs):
        os.chmod(tmp, 0o755)  # nginx's worker writes its temporary files below it
        results = run_all(
            Bench(tools, settings, procs, tmp), args.targets, args.attackers, args.attacks
        )
    text = report(results, meta)
    readme = (MARK_START, MARK_END, "Slow clients")
    return publish(text, results, meta, "slowclients", readme if args.write_readme else None)


if __name__ == "__main__":
    sys.exit(main())
