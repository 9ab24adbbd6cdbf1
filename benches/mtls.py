#!/usr/bin/env python3
"""Compare mTLS sidecars: meshpy and Envoy, full handshakes and a two-sidecar path.

Both use the same certificates, made for the run: ECDSA P-256, root ->
intermediate -> leaf, each leaf with one SPIFFE ID as its URI SAN
(``spiffe://meshpy.local/ns/default/sa/payment`` for the server side,
``.../sa/frontend`` for the client side). For each proxy, from one run:

1. full mTLS handshakes: the inbound sidecar (TLS 1.3, client certificate
   required) terminates every connection of ``benches/tlsload`` (a Go
   client: new connection, full handshake with a client certificate, one
   ``GET /`` with ``Connection: close``, close) and forwards the request to
   the backend. Reported: handshakes per CPU-second of the server process
   (from /proc), handshakes/s, the server's core share, and which side
   saturated;
2. the two-sidecar path: wrk (plaintext HTTP/1.1, keep-alive) -> sidecar A
   (outbound) -> mTLS, HTTP/2 -> sidecar B (inbound) -> backend. Reported:
   max requests/s (median of ``--rounds`` wrk rounds), the pair's CPU, and
   p50/p99 at a fixed rate (fortio) with what the pair adds to a direct run.

Both sidecars of a pair run on ``--proxy-cpu``; the backend, the load
generators and this script on ``--load-cpu``. The machinery (processes,
/proc accounting, wrk, fortio, tlsload, certificates, reports) is the
``harness`` package next to this script.

Needs the ``cryptography`` package (run it with the project's .venv python,
as ``make bench-mtls`` does) and Go (to build benches/tlsload).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.baseline import BASELINE, baseline_checks
from harness.cli import exit_on_sigterm, load_parser, parse_load_args, settings_from
from harness.common import Json, log
from harness.envoy_conf import (
    envoy_argv,
    envoy_cluster,
    envoy_downstream_mtls,
    envoy_listener,
    envoy_static,
    envoy_upstream_mtls,
)
from harness.identities import CLIENT_ID, SERVER_ID, Pki
from harness.measure import (
    Bench,
    Target,
    check_alive,
    measure_latency,
    measure_round,
    start_backend,
)
from harness.meshpy_conf import meshpy_head, meshpy_identity, meshpy_launch
from harness.net import free_port
from harness.noise import ForeignCpu, wait_for_quiet
from harness.pairs import Pair, start_sidecars
from harness.pki import make_pki
from harness.processes import Launch, scratch
from harness.procfs import CLK_TCK, core_busy, core_ticks, cpu_ticks
from harness.ready import probe_http
from harness.report import (
    NOT_SATURATED,
    added,
    direct_run,
    failed_row,
    flagged,
    fmt,
    goal_section,
    heading,
    notes,
    notes_section,
    pct,
    rate_cell,
    table,
)
from harness.results import publish
from harness.runner import collect, interleave, start_targets, tmp_as_var
from harness.tlsload import HandshakeSettings, ensure_tlsload, go_version, run_tlsload
from harness.tools import install_tools
from harness.versions import (
    load_versions,
    meshpy_build,
    meshpy_version,
    program_version,
    run_meta,
)

MARK_START = "<!-- mtls:start -->"
MARK_END = "<!-- mtls:end -->"
ALL_TARGETS = ("meshpy", "envoy", "direct")
SIDECARS = ("meshpy", "envoy")
GOAL_P99_ADDED = 0.7  # meshpy pair's added p99 <= this x Envoy pair's
GOAL_P50_PER_HOP_US = 100.0

# ---------------------------------------------------------------------------
# Sidecar configurations: B (inbound, terminates mTLS), A (outbound, originates it)
# ---------------------------------------------------------------------------


def envoy_inbound(tmp: Path, pki: Pki, port: int, backend: int) -> Path:
    """Envoy B: mTLS listener (client certificate required) -> plaintext backend."""
    tls = envoy_downstream_mtls(pki.server, pki.root)
    conf = tmp / "envoy-inbound.yaml"
    conf.write_text(
        envoy_static(
            [envoy_listener("inbound", port, "backend", "AUTO", tls)],
            [envoy_cluster("backend", backend)],
        )
    )
    return conf


def envoy_outbound(tmp: Path, pki: Pki, port: int, upstream: int) -> Path:
    """Envoy A: plaintext HTTP/1.1 listener -> cluster over mTLS and HTTP/2, B's ID checked."""
    extra = envoy_upstream_mtls(pki.client, pki.root)
    conf = tmp / "envoy-outbound.yaml"
    conf.write_text(
        envoy_static(
            [envoy_listener("outbound", port, "payment", "HTTP1", "")],
            [envoy_cluster("payment", upstream, extra)],
        )
    )
    return conf


def meshpy_inbound(tmp: Path, pki: Pki, port: int, backend: int, admin: int) -> Path:
    """meshpy B: listener with tls strict (mTLS, client certificate required) -> backend."""
    conf = tmp / "meshpy-inbound.yaml"
    conf.write_text(
        meshpy_head(admin, meshpy_identity(pki.server, pki.root))
        + f"""listeners:
  - {{name: inbound, address: 127.0.0.1:{port}, protocol: http, cluster: backend,
     tls: {{mode: strict}}}}
clusters:
  - {{name: backend, endpoints: ["127.0.0.1:{backend}"], lb: round_robin, protocol: http1}}
"""
    )
    return conf


def meshpy_outbound(tmp: Path, pki: Pki, port: int, upstream: int, admin: int) -> Path:
    """meshpy A: plaintext listener -> cluster over mTLS (HTTP/2 by ALPN), B's ID checked."""
    conf = tmp / "meshpy-outbound.yaml"
    conf.write_text(
        meshpy_head(admin, meshpy_identity(pki.client, pki.root))
        + f"""listeners:
  - {{name: outbound, address: 127.0.0.1:{port}, protocol: http, cluster: payment}}
clusters:
  - {{name: payment, endpoints: ["127.0.0.1:{upstream}"], lb: round_robin,
     tls: {{identity: "{SERVER_ID}"}}}}
"""
    )
    return conf


# (tmp, pki, own port, upstream port) -> how to start it
Launcher = Callable[[Path, Pki, int, int], Launch]


@dataclass
class Sidecar:
    name: str
    inbound: Launcher
    outbound: Launcher
    version: Callable[[], str]


def make_sidecars(tools: dict[str, str]) -> dict[str, Sidecar]:
    def meshpy(make: Callable[[Path, Pki, int, int, int], Path], tool: str = "meshpy") -> Launcher:
        def launch(tmp: Path, pki: Pki, port: int, upstream: int) -> Launch:
            admin = free_port()
            return meshpy_launch(tools[tool], make(tmp, pki, port, upstream, admin), admin)

        return launch

    def envoy(make: Callable[[Path, Pki, int, int], Path]) -> Launcher:
        def launch(tmp: Path, pki: Pki, port: int, upstream: int) -> Launch:
            return Launch(envoy_argv(tools["envoy"], make(tmp, pki, port, upstream)))

        return launch

    sidecars = {}
    if "meshpy" in tools:
        sidecars["meshpy"] = Sidecar(
            "meshpy",
            meshpy(meshpy_inbound),
            meshpy(meshpy_outbound),
            lambda: meshpy_version(tools["meshpy"]),
        )
    if BASELINE in tools:
        sidecars[BASELINE] = Sidecar(
            BASELINE,
            meshpy(meshpy_inbound, BASELINE),
            meshpy(meshpy_outbound, BASELINE),
            lambda: meshpy_version(tools[BASELINE]),
        )
    if "envoy" in tools:
        sidecars["envoy"] = Sidecar(
            "envoy",
            envoy(envoy_inbound),
            envoy(envoy_outbound),
            lambda: program_version("envoy", tools["envoy"]),
        )
    return sidecars


# ---------------------------------------------------------------------------
# The pairs under test, and their handshakes
# ---------------------------------------------------------------------------


@dataclass
class MtlsBench:
    bench: Bench  # tools, wrk/fortio settings, processes, backend port
    pki: Pki
    handshake: HandshakeSettings


def start_pair(m: MtlsBench, sidecar: Sidecar) -> Pair:
    """Start B, check it requires mTLS, then A; read the pair's idle memory."""
    b, name = m.bench, sidecar.name
    in_port, out_port = free_port(), free_port()
    pair = Pair(name, f"http://127.0.0.1:{out_port}/", inbound_port=in_port)
    start_sidecars(
        b,
        pair,
        m.pki,
        inbound=sidecar.inbound(b.tmp, m.pki, in_port, b.backend_port),
        ports=[in_port],
        outbound=lambda: sidecar.outbound(b.tmp, m.pki, out_port, in_port),
        probe=probe_http(pair.url),
    )
    return pair


def tlsload(m: MtlsBench, port: int, seconds: float) -> Json:
    """One run of the Go client against B's mTLS listener at `port`."""
    cpu = m.bench.settings.load_cpu
    return run_tlsload(m.bench.tools["tlsload"], port, m.pki, m.handshake, seconds=seconds, cpu=cpu)


def measure_handshakes(m: MtlsBench, p: Pair) -> None:
    """One round of full mTLS handshakes against B: per server CPU-second and per second."""
    s = m.bench.settings
    wait_for_quiet(s.max_wait_idle)
    if not p.handshakes:
        tlsload(m, p.inbound_port, s.warmup_seconds)
    audit, cores0 = ForeignCpu(), core_ticks()
    ticks0 = cpu_ticks(p.inbound_tree())
    r = tlsload(m, p.inbound_port, m.handshake.seconds)
    cpu_s = (cpu_ticks(p.inbound_tree()) - ticks0) / CLK_TCK
    r["server_cpu_s"] = cpu_s
    r["per_cpu_s"] = r["ok"] / cpu_s if cpu_s else None
    r["server_core_util"] = cpu_s / r["seconds"]
    r["proxy_core_busy"] = core_busy(cores0, s.proxy_cpu)
    r["load_core_busy"] = core_busy(cores0, s.load_cpu)
    p.handshakes.append(r)
    p.foreign.append(audit.cores())
    check_alive(m.bench, p)
    per = fmt(r["per_cpu_s"])
    log(f"{p.name}: handshakes round {len(p.handshakes)}: {r['rate']:.0f}/s, {per} per CPU-s")


def saturated(server_util: float, load_busy: float) -> str:
    if server_util >= NOT_SATURATED:
        return "server"
    if load_busy >= NOT_SATURATED:
        return "client core"
    return "neither"


def summarize_handshakes(rounds: list[Json]) -> Json:
    def med(key: str) -> float:
        return statistics.median(r[key] or 0.0 for r in rounds)

    last = rounds[-1]
    out: Json = {k: med(k) for k in ("per_cpu_s", "rate", "server_core_util", "load_core_busy")}
    out |= {k: med(k) for k in ("p50_us", "p99_us", "client_cpu_seconds", "seconds")}
    out["failed"] = sum(r["failed"] for r in rounds)
    out["first_error"] = next((r["first_error"] for r in rounds if r.get("first_error")), "")
    out["saturated"] = saturated(out["server_core_util"], out["load_core_busy"])
    out |= {k: last.get(k, "?") for k in ("tls_version", "group", "cipher", "alpn", "peer_id")}
    out["rounds"] = rounds
    return out


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def run_all(m: MtlsBench, names: list[str], sidecars: dict[str, Sidecar]) -> dict[str, Json]:
    """Start the pairs; handshake rounds, latency runs, wrk rounds, each interleaved."""
    b, rounds, describe = m.bench, m.bench.settings.rounds, tmp_as_var(m.bench)
    start_backend(b)

    def start(name: str) -> Target:
        if name == "direct":
            return Target("direct", f"http://127.0.0.1:{b.backend_port}/")
        return start_pair(m, sidecars[name])

    def handshakes(_: Bench, p: Target) -> None:
        assert isinstance(p, Pair)
        measure_handshakes(m, p)

    targets, errors = start_targets(names, start, describe)
    pairs = [t for t in targets if isinstance(t, Pair)]
    interleave(b, errors, pairs, [handshakes] * rounds, describe)
    interleave(b, errors, targets, [measure_latency] + [measure_round] * rounds, describe)
    return collect(
        names,
        errors,
        targets,
        lambda t: {"handshakes": summarize_handshakes(t.handshakes)} if isinstance(t, Pair) else {},
    )


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def ok_pairs(results: dict[str, Json]) -> dict[str, Json]:
    return {n: r for n, r in results.items() if "error" not in r and "handshakes" in r}


def handshake_table(results: dict[str, Json]) -> str:
    head = ["sidecar B", "handshakes / server CPU-s", "handshakes/s", "server core %"]
    head += ["load core %", "saturated", "failures", "conn p50 ms", "conn p99 ms"]
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append(failed_row(name, r, 7))
            continue
        h = r.get("handshakes")
        if h is None:
            continue
        rows.append(
            [
                name,
                fmt(h["per_cpu_s"]),
                fmt(h["rate"]),
                pct(h["server_core_util"]),
                pct(h["load_core_busy"]),
                h["saturated"],
                flagged(h["failed"]),
                fmt(h["p50_us"] / 1000, 2),
                fmt(h["p99_us"] / 1000, 2),
            ]
        )
    return table(head, rows)


def path_table(results: dict[str, Json], rate: int) -> str:
    head = ["path", "max req/s (median)", "wrk errors", "pair core %", "CPU µs/req"]
    head += [f"p50 µs @{rate}", f"p99 µs @{rate}", "added p50 µs", "added p99 µs"]
    head += ["added p50 per hop µs", "rate achieved"]
    direct = direct_run(results)
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append(failed_row(name, r, 10))
            continue
        lat, errs, is_pair = r["latency"], r["wrk_errors"], "handshakes" in r
        add50, add99 = (added(r, direct, k) if is_pair else None for k in ("p50_us", "p99_us"))
        rows.append(
            [
                f"{name} pair" if is_pair else name,
                fmt(r["rps"]),
                flagged(errs),
                pct(r.get("proxy_core_util")),
                fmt(r.get("cpu_us_per_req"), 1),
                fmt(lat["p50_us"]),
                fmt(lat["p99_us"]),
                fmt(add50),
                fmt(add99),
                fmt(add50 / 2 if add50 is not None else None),
                rate_cell(lat),
            ]
        )
    return table(head, rows)


def goal_checks(results: dict[str, Json]) -> list[tuple[str, str, bool]]:
    pairs, direct = ok_pairs(results), results.get("direct")
    m, e = pairs.get("meshpy"), pairs.get("envoy")
    checks: list[tuple[str, str, bool]] = []
    if m and e:
        hs = m["handshakes"]["per_cpu_s"] / e["handshakes"]["per_cpu_s"]
        rps = m["rps"] / e["rps"]
        checks += [
            ("TLS handshakes per server CPU-s >= Envoy's", f"{hs:.2f}x", hs >= 1.0),
            ("two-hop req/s >= 1.0x Envoy pair", f"{rps:.2f}x", rps >= 1.0),
        ]
    if m and direct and "error" not in direct:
        add50 = (m["latency"]["p50_us"] - direct["latency"]["p50_us"]) / 2
        if e:
            m99, e99 = (added(x, direct, "p99_us") or 0.0 for x in (m, e))
            ok = e99 > 0 and m99 <= GOAL_P99_ADDED * e99
            value = f"{m99 / e99:.2f}x" if e99 > 0 else "-"
            checks.append((f"added p99 <= {GOAL_P99_ADDED}x Envoy pair's", value, ok))
        checks.append(
            (
                f"added p50 per hop <= {GOAL_P50_PER_HOP_US:.0f} µs",
                f"{add50:.0f} µs",
                add50 <= GOAL_P50_PER_HOP_US,
            )
        )
    return checks


def mtls_notes(results: dict[str, Json]) -> list[str]:
    out = notes(results)
    for name, r in ok_pairs(results).items():
        h = r["handshakes"]
        if h["failed"]:
            out.append(f"{name}: {h['failed']} handshake connections failed: {h['first_error']}")
        if h["saturated"] != "server":
            out.append(
                f"{name}: the handshake server used {h['server_core_util'] * 100:.0f}% of its "
                f"core ({h['saturated']} saturated), so handshakes/s is a lower bound; "
                "handshakes per server CPU-s is the figure to compare"
            )
        spread = [x["per_cpu_s"] or 0.0 for x in h["rounds"]]
        if len(spread) > 1 and (max(spread) - min(spread)) / statistics.median(spread) > 0.10:
            vals = ", ".join(f"{v:.0f}" for v in spread)
            out.append(f"{name}: handshake rounds differ by more than 10% ({vals} per CPU-s)")
    return out


def report(results: dict[str, Json], meta: Json) -> str:
    s, h = meta["settings"], meta["handshake"]
    pair = next((r["handshakes"] for r in ok_pairs(results).values()), None)
    negotiated = (
        f"{pair['tls_version']}, {pair['group']}, {pair['cipher']}, ALPN {pair['alpn']}"
        if pair
        else "-"
    )
    parts = [
        *heading(meta),
        f"Settings: both sidecars on CPU {s['proxy_cpu']}, backend and load generators on CPU "
        f"{s['load_cpu']}. Handshakes: tlsload -c {h['connections']}, {s['rounds']} x "
        f"{h['seconds']:g} s, offering {h['curves']}; negotiated {negotiated}. Two-hop: "
        f"wrk -t1 -c{s['connections']}, {s['rounds']} x {s['wrk_seconds']:g} s after a "
        f"{s['warmup_seconds']:g} s warm-up; fortio {s['rate']} req/s, "
        f"-c {s['latency_connections']}, {s['latency_seconds']:g} s.",
        "",
        "Full mTLS handshakes (new connection, handshake, one request, close):",
        "",
        handshake_table(results),
        "",
        "Two-sidecar path (wrk/fortio -> A -> mTLS, HTTP/2 -> B -> backend):",
        "",
        path_table(results, s["rate"]),
    ]
    parts += goal_section(goal_checks(results) + baseline_checks(ok_pairs(results)))
    parts += notes_section(mtls_notes(results), "path", meta)
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = load_parser(
        (__doc__ or "").split("\n")[0],
        ALL_TARGETS,
        rounds="handshake and wrk rounds (median reported)",
        cpu="core for both sidecars",
        readme="rewrite the README's mTLS results",
        keep="keep the certificates, configs and logs",
        baseline=True,
    )
    add = p.add_argument
    add("--handshake-duration", type=float, default=10.0, help="seconds per handshake round")
    add("--handshake-connections", type=int, default=16, help="tlsload concurrent connections")
    add("--curves", default="X25519", help="key exchange groups tlsload offers")
    args = parse_load_args(p, argv, ALL_TARGETS)
    if args.quick:
        args.handshake_duration = 5.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    tools = install_tools([n for n in args.proxies if n in SIDECARS], args.baseline)
    tools["tlsload"] = ensure_tlsload()
    sidecars = make_sidecars(tools)
    settings = settings_from(args)
    hs = HandshakeSettings(args.handshake_duration, args.handshake_connections, args.curves)
    versions = {name: s.version() for name, s in sidecars.items()} | load_versions(tools)
    meta = run_meta(
        versions | {"tlsload built with Go": go_version()},
        settings,
        handshake=asdict(hs),
        identities={"server": SERVER_ID, "client": CLIENT_ID},
        meshpy_build=meshpy_build(tools["meshpy"]) if "meshpy" in tools else None,
    )
    os.sched_setaffinity(0, {args.load_cpu})  # keep this script off the sidecars' core
    with scratch("meshpy-mtls-", args.keep_tmp, "certificates, configs and logs") as (tmp, procs):
        mtls = MtlsBench(Bench(tools, settings, procs, tmp), make_pki(tmp / "pki"), hs)
        results = run_all(mtls, args.proxies, sidecars)
    text = report(results, meta)
    readme = (MARK_START, MARK_END, "mTLS: handshakes and a two-sidecar path")
    return publish(text, results, meta, "mtls", readme if args.write_readme else None)


if __name__ == "__main__":
    sys.exit(main())
