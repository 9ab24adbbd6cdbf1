#!/usr/bin/env python3
"""What tracing costs on the two-sidecar mTLS path: meshpy and Envoy, off and on.

The path is mtls.py's: wrk (plaintext HTTP/1.1, keep-alive) -> sidecar A
(outbound) -> mTLS, HTTP/2 -> sidecar B (inbound) -> backend. wrk's and
fortio's requests carry no trace headers, so A starts every trace and makes
the sampling decision; B continues A's trace and keeps its decision. Both
sidecars export to a local OTLP/HTTP receiver (``harness/otlp_sink.py``, on
the load core like the backend) that counts the spans and answers 200 at once.
Configurations, each a pair of its own:

- ``meshpy-off``: no ``tracing`` section (trace headers pass through untouched);
- ``meshpy-1``, ``meshpy-100``: ``tracing: {sample_percent: 1 | 100, export: [sink]}``,
  A's listener ``direction: outbound``, B's ``direction: inbound``;
- ``meshpy-100-down``: 100 %, exporting to a closed port (a collector that is down);
- ``meshpy-100-slow``: 100 %, exporting to the sink's slow path, answered after
  ``--slow-delay`` seconds (a collector that is slow);
- ``envoy-off``: mtls.py's Envoy pair;
- ``envoy-100``: the same with the OpenTelemetry tracer (``envoy.tracers.opentelemetry``,
  OTLP/HTTP to the sink) on both connection managers, ``random_sampling`` 100 %, and
  its batching set to meshpy's (``tracing.opentelemetry.min_flush_spans`` 512,
  ``flush_interval_ms`` 1000; Envoy's defaults are 5 spans and 5 s).

Reported for each: max requests/s (median of ``--rounds`` wrk rounds), the
pair's CPU per request, p50/p99 at a fixed rate (fortio), the ratio of req/s
to the same proxy with tracing off, the spans that reached the sink per
request through the pair, and meshpy's span counters (dropped, failed,
exported) from each sidecar's admin ``/metrics``. Steps and rounds are
interleaved between the configurations, as in mtls.py.

Run it with the project's .venv python (``make bench-tracing``): it needs the
``cryptography`` and ``protobuf`` packages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.cli import exit_on_sigterm, load_parser, parse_load_args, settings_from
from harness.common import Json
from harness.envoy_conf import (
    envoy_argv,
    envoy_cluster,
    envoy_downstream_mtls,
    envoy_listener,
    envoy_otel_tracing,
    envoy_runtime,
    envoy_static,
    envoy_upstream_mtls,
)
from harness.identities import CLIENT_ID, SERVER_ID, Pki
from harness.measure import Bench, Target, measure_latency, measure_round, start_backend
from harness.meshpy_conf import meshpy_head, meshpy_identity, meshpy_launch
from harness.net import free_port
from harness.otlp_sink import SLOW_PREFIX, sink_argv, sink_stats
from harness.pairs import Pair, start_sidecars
from harness.pki import make_pki
from harness.processes import Launch, Popen, scratch
from harness.procfs import CLK_TCK, cpu_ticks, process_tree
from harness.ready import probe_http, wait_until
from harness.report import (
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
from harness.tools import install_tools
from harness.versions import load_versions, meshpy_build, meshpy_version, program_version, run_meta

MARK_START = "<!-- tracing:start -->"
MARK_END = "<!-- tracing:end -->"
GOAL_COST_1 = 0.03  # meshpy at 1 %: at most this share of req/s lost against off
GOAL_COST_100 = 0.15  # meshpy at 100 %
ENVOY_FLUSH = {
    "tracing.opentelemetry.min_flush_spans": 512,
    "tracing.opentelemetry.flush_interval_ms": 1000,
}
SPAN_COUNTERS = ("dropped", "failed", "exported")


@dataclass(frozen=True)
class Config:
    """One pair under test: the proxy, its sampling (None: tracing off) and its receiver."""

    name: str
    proxy: str  # meshpy | envoy
    percent: float | None
    receiver: str = "sink"  # sink | slow | down
    what: str = ""


CONFIGS = {
    c.name: c
    for c in (
        Config("meshpy-off", "meshpy", None, "", "tracing off"),
        Config("meshpy-1", "meshpy", 1, "sink", "1 %"),
        Config("meshpy-100", "meshpy", 100, "sink", "100 %"),
        Config("meshpy-100-down", "meshpy", 100, "down", "100 %, collector down"),
        Config("meshpy-100-slow", "meshpy", 100, "slow", "100 %, collector slow"),
        Config("envoy-off", "envoy", None, "", "tracing off"),
        Config("envoy-100", "envoy", 100, "sink", "100 %"),
    )
}
ALL_TARGETS = tuple(CONFIGS)


@dataclass
class TracingBench:
    bench: Bench
    pki: Pki
    sink_port: int
    down_port: int  # a port nothing listens on
    sink: Popen | None = None


@dataclass
class TracingPair(Pair):
    config: Config | None = None
    admins: dict[str, int] = field(default_factory=dict)  # side ("A", "B") -> admin port


def receiver_url(t: TracingBench, c: Config, side: str) -> str:
    """Where side A or B of `c` exports: its own path on the sink, so spans count per side."""
    path = f"/{c.name}/{side}/v1/traces"
    if c.receiver == "slow":
        return f"http://127.0.0.1:{t.sink_port}{SLOW_PREFIX.rstrip('/')}{path}"
    port = t.down_port if c.receiver == "down" else t.sink_port
    return f"http://127.0.0.1:{port}{path}"


# ---------------------------------------------------------------------------
# Sidecar configurations: B (inbound, terminates mTLS), A (outbound, originates it)
# ---------------------------------------------------------------------------


def meshpy_tracing(c: Config, service: str, endpoint: str) -> str:
    if c.percent is None:
        return ""
    return f"""tracing:
  sample_percent: {c.percent:g}
  service: {service}
  export:
    - endpoint: {endpoint}
"""


def meshpy_inbound(t: TracingBench, c: Config, port: int, admin: int) -> Path:
    """meshpy B: listener with tls strict, direction inbound -> backend; tracing per `c`."""
    b = t.bench
    conf = b.tmp / f"{c.name}-inbound.yaml"
    conf.write_text(
        meshpy_head(admin, meshpy_identity(t.pki.server, t.pki.root))
        + f"""listeners:
  - {{name: inbound, address: 127.0.0.1:{port}, protocol: http, cluster: backend,
     direction: inbound, tls: {{mode: strict}}}}
clusters:
  - {{name: backend, endpoints: ["127.0.0.1:{b.backend_port}"], lb: round_robin,
     protocol: http1}}
"""
        + meshpy_tracing(c, "payment", receiver_url(t, c, "B"))
    )
    return conf


def meshpy_outbound(t: TracingBench, c: Config, port: int, upstream: int, admin: int) -> Path:
    """meshpy A: plaintext listener, direction outbound -> cluster over mTLS; tracing per `c`."""
    conf = t.bench.tmp / f"{c.name}-outbound.yaml"
    conf.write_text(
        meshpy_head(admin, meshpy_identity(t.pki.client, t.pki.root))
        + f"""listeners:
  - {{name: outbound, address: 127.0.0.1:{port}, protocol: http, cluster: payment,
     direction: outbound}}
clusters:
  - {{name: payment, endpoints: ["127.0.0.1:{upstream}"], lb: round_robin,
     tls: {{identity: "{SERVER_ID}"}}}}
"""
        + meshpy_tracing(c, "frontend", receiver_url(t, c, "A"))
    )
    return conf


def envoy_tracing(t: TracingBench, c: Config, service: str, side: str) -> tuple[str, str, str]:
    """(the connection manager's tracing, the collector's cluster, the runtime) for `c`."""
    if c.percent is None:
        return "", "", ""
    port = t.down_port if c.receiver == "down" else t.sink_port
    hcm = envoy_otel_tracing(receiver_url(t, c, side), "otel", service, c.percent)
    return hcm, envoy_cluster("otel", port), envoy_runtime(ENVOY_FLUSH)


def envoy_inbound(t: TracingBench, c: Config, port: int, admin: int) -> Path:
    """Envoy B: mTLS listener (client certificate required), INBOUND -> plaintext backend."""
    b = t.bench
    tls = envoy_downstream_mtls(t.pki.server, t.pki.root)
    hcm, otel, runtime = envoy_tracing(t, c, "payment", "B")
    conf = b.tmp / f"{c.name}-inbound.yaml"
    listener = envoy_listener(
        "inbound", port, "backend", "AUTO", tls, hcm_extra=hcm, direction="INBOUND"
    )
    clusters = [envoy_cluster("backend", b.backend_port)] + ([otel] if otel else [])
    conf.write_text(envoy_static([listener], clusters, admin, runtime))
    return conf


def envoy_outbound(t: TracingBench, c: Config, port: int, upstream: int, admin: int) -> Path:
    """Envoy A: plaintext HTTP/1.1 listener, OUTBOUND -> cluster over mTLS and HTTP/2."""
    extra = envoy_upstream_mtls(t.pki.client, t.pki.root)
    hcm, otel, runtime = envoy_tracing(t, c, "frontend", "A")
    conf = t.bench.tmp / f"{c.name}-outbound.yaml"
    listener = envoy_listener(
        "outbound", port, "payment", "HTTP1", "", hcm_extra=hcm, direction="OUTBOUND"
    )
    clusters = [envoy_cluster("payment", upstream, extra)] + ([otel] if otel else [])
    conf.write_text(envoy_static([listener], clusters, admin, runtime))
    return conf


def start_pair(t: TracingBench, c: Config) -> TracingPair:
    """Start B, check it requires mTLS, then A; read the pair's idle memory."""
    b = t.bench
    in_port, out_port = free_port(), free_port()
    admins = {"A": free_port(), "B": free_port()}
    pair = TracingPair(
        c.name, f"http://127.0.0.1:{out_port}/", inbound_port=in_port, config=c, admins=admins
    )
    if c.proxy == "meshpy":
        meshpy = b.tools["meshpy"]
        inbound = meshpy_launch(meshpy, meshpy_inbound(t, c, in_port, admins["B"]), admins["B"])

        def outbound() -> Launch:
            conf = meshpy_outbound(t, c, out_port, in_port, admins["A"])
            return meshpy_launch(meshpy, conf, admins["A"])

    else:
        envoy = b.tools["envoy"]
        inbound = Launch(envoy_argv(envoy, envoy_inbound(t, c, in_port, admins["B"])))

        def outbound() -> Launch:
            return Launch(envoy_argv(envoy, envoy_outbound(t, c, out_port, in_port, admins["A"])))

    start_sidecars(
        b,
        pair,
        t.pki,
        inbound=inbound,
        ports=[in_port],
        outbound=outbound,
        probe=probe_http(pair.url),
    )
    return pair


# ---------------------------------------------------------------------------
# Counters: the sidecars' admin endpoints and the sink
# ---------------------------------------------------------------------------


def admin_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5.0) as resp:
        text: str = resp.read().decode()
        return text


def prometheus_sum(text: str, name: str) -> int:
    """The sum of the samples of metric `name` (all label sets) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return round(total)


def envoy_stat(text: str, name: str) -> int:
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def pair_counters(p: TracingPair) -> Json:
    """A's requests (what wrk, fortio and the probes sent) and, for meshpy, the span
    counters of each side."""
    c = p.config
    assert c is not None
    out: Json = {}
    try:
        if c.proxy == "meshpy":
            for side, port in p.admins.items():
                text = admin_text(port, "/metrics")
                out[side] = {k: prometheus_sum(text, f"meshpy_trace_spans_{k}_total")
                             for k in SPAN_COUNTERS}  # fmt: skip
                if side == "A":
                    out["requests"] = prometheus_sum(text, "meshpy_requests_total")
        else:
            text = admin_text(p.admins["A"], "/stats")
            out["requests"] = envoy_stat(text, "http.outbound.downstream_rq_total")
            for side, port in p.admins.items():
                sent = envoy_stat(admin_text(port, "/stats"), "tracing.opentelemetry.spans_sent")
                out[side] = {"exported": sent}
    except OSError as err:
        out["error"] = str(err)
    return out


def spans_at_sink(stats: dict[str, dict[str, int]], name: str) -> Json:
    """What the sink got from `name`'s sides: {side: {requests, bytes, spans, bad}}."""
    out: Json = {}
    for path, s in stats.items():
        parts = path.removeprefix(SLOW_PREFIX.rstrip("/")).strip("/").split("/")
        if parts[0] == name and len(parts) > 1:
            out[parts[1]] = s
    return out


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def start_sink(t: TracingBench, slow_delay: float) -> None:
    b = t.bench
    proc = b.procs.start("otlp-sink", sink_argv(t.sink_port, slow_delay), b.settings.load_cpu)

    def probe() -> str | None:
        try:
            sink_stats(t.sink_port)
        except OSError as err:
            return str(err)
        return None

    wait_until(b.procs, "otlp-sink", proc, probe)
    t.sink = proc


def run_all(t: TracingBench, names: list[str], slow_delay: float) -> tuple[dict[str, Json], Json]:
    """Start the sink and the pairs; latency runs and wrk rounds, interleaved; then the
    counters, once the last batches have had time to arrive."""
    b, describe = t.bench, tmp_as_var(t.bench)
    start_backend(b)
    start_sink(t, slow_delay)
    assert t.sink is not None
    sink_ticks0, wall0 = cpu_ticks(process_tree(t.sink.pid)), time.monotonic()
    targets, errors = start_targets(names, lambda n: start_pair(t, CONFIGS[n]), describe)

    def sink_ticks() -> int:
        assert t.sink is not None
        return cpu_ticks(process_tree(t.sink.pid))

    def round_and_sink(b: Bench, target: Target) -> None:
        """A wrk round, and the sink's CPU per request meanwhile (it shares the load core)."""
        ticks0 = sink_ticks()
        measure_round(b, target)
        r = target.rounds[-1]
        r["sink_cpu_us_per_req"] = (sink_ticks() - ticks0) / CLK_TCK * 1e6 / max(1, r["requests"])

    steps = [measure_latency] + [round_and_sink] * b.settings.rounds
    interleave(b, errors, targets, steps, describe)
    sink_cpu = (sink_ticks() - sink_ticks0) / CLK_TCK
    wall = time.monotonic() - wall0
    time.sleep(max(2.0, slow_delay + 1.0))  # the batches still queued or in flight
    stats = sink_stats(t.sink_port)

    def extra(target: Target) -> Json:
        assert isinstance(target, TracingPair)
        sink_us = statistics.median(r["sink_cpu_us_per_req"] for r in target.rounds)
        return {
            "counters": pair_counters(target),
            "sink": spans_at_sink(stats, target.name),
            "sink_cpu_us_per_req": sink_us,
        }

    sink = {"cpu_s": sink_cpu, "core_share": sink_cpu / wall if wall else None}
    return collect(names, errors, targets, extra), sink


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def ok(results: dict[str, Json], name: str) -> Json | None:
    r = results.get(name)
    return r if r and "error" not in r else None


def off_of(name: str) -> str:
    return f"{CONFIGS[name].proxy}-off"


def rps_ratio(results: dict[str, Json], name: str) -> float | None:
    r, off = ok(results, name), ok(results, off_of(name))
    return r["rps"] / off["rps"] if r and off and off["rps"] else None


def spans_per_request(r: Json) -> float | None:
    requests: int = r.get("counters", {}).get("requests") or 0
    spans: int = sum(s["spans"] for s in r.get("sink", {}).values())
    return spans / requests if requests else None


def side_counts(r: Json, key: str) -> str:
    counters = r.get("counters", {})
    if key not in counters.get("A", {}):
        return "-"
    return " / ".join(fmt(counters.get(side, {}).get(key)) for side in ("A", "B"))


def results_table(results: dict[str, Json], rate: int) -> str:
    head = ["pair", "tracing", "max req/s (median)", "vs off", "wrk errors", "pair core %"]
    head += ["CPU µs/req", "+CPU µs/req vs off", f"p50 µs @{rate}", f"p99 µs @{rate}"]
    head += ["rate achieved", "spans at sink / req", "sink CPU µs/req", "dropped A / B"]
    head += ["failed A / B", "exported A / B"]
    rows = []
    for name, r in results.items():
        c = CONFIGS[name]
        if "error" in r:
            rows.append([name, c.what, "failed: " + r["error"].splitlines()[0]] + [""] * 13)
            continue
        off = ok(results, off_of(name))
        ratio = rps_ratio(results, name)
        extra_cpu = r["cpu_us_per_req"] - off["cpu_us_per_req"] if off and off is not r else None
        lat = r["latency"]
        rows.append(
            [
                name,
                c.what,
                fmt(r["rps"]),
                "1.000" if off is r else fmt(ratio, 3),
                flagged(r["wrk_errors"]),
                pct(r.get("proxy_core_util")),
                fmt(r.get("cpu_us_per_req"), 1),
                fmt(extra_cpu, 1),
                fmt(lat["p50_us"]),
                fmt(lat["p99_us"]),
                rate_cell(lat),
                fmt(spans_per_request(r), 3) if c.percent is not None else "-",
                fmt(r.get("sink_cpu_us_per_req"), 1) if c.percent is not None else "-",
                side_counts(r, "dropped"),
                side_counts(r, "failed"),
                side_counts(r, "exported"),
            ]
        )
    return table(head, rows)


def cost(results: dict[str, Json], name: str) -> float | None:
    ratio = rps_ratio(results, name)
    return 1.0 - ratio if ratio is not None else None


def goal_checks(results: dict[str, Json]) -> list[tuple[str, str, bool]]:
    checks = []
    for name, goal in (("meshpy-1", GOAL_COST_1), ("meshpy-100", GOAL_COST_100)):
        lost = cost(results, name)
        if lost is not None:
            what = f"{CONFIGS[name].what} sampled: req/s lost against off <= {goal:.0%}"
            checks.append((what, f"{lost:.1%}", lost <= goal))
    return checks


def comparison(results: dict[str, Json]) -> list[str]:
    """meshpy's cost at 100 % against Envoy's, and the collector down or slow against the
    collector that answers."""
    lines = []
    m, e = cost(results, "meshpy-100"), cost(results, "envoy-100")
    if m is not None and e is not None:
        lines.append(
            f"At 100 %, meshpy loses {m:.1%} of its req/s to tracing, Envoy {e:.1%} of its own."
        )
    working = ok(results, "meshpy-100")
    for name in ("meshpy-100-down", "meshpy-100-slow"):
        r = ok(results, name)
        if r and working:
            lines.append(
                f"{name}: {r['rps'] / working['rps']:.3f}x the req/s of meshpy-100 "
                f"(collector answering), {rps_ratio(results, name) or 0:.3f}x of off; "
                f"spans dropped (A / B) {side_counts(r, 'dropped')}, "
                f"failed {side_counts(r, 'failed')}."
            )
    return ["", *lines] if lines else []


def tracing_notes(results: dict[str, Json], sink: Json) -> list[str]:
    out = notes(results)
    share = sink.get("core_share")
    if share is not None:
        out.append(
            f"the OTLP sink used {share * 100:.1f}% of the load core over the measurements "
            "(all configurations together)"
        )
    for name, r in results.items():
        if "error" in r:
            continue
        if "error" in r.get("counters", {}):
            out.append(f"{name}: counters not read: {r['counters']['error']}")
        bad = sum(s["bad"] for s in r.get("sink", {}).values())
        if bad:
            out.append(f"{name}: {bad} exports did not decode as ExportTraceServiceRequest")
    return out


def report(results: dict[str, Json], meta: Json, sink: Json) -> str:
    s, extra = meta["settings"], meta["tracing"]
    parts = [
        *heading(meta),
        f"Settings: both sidecars on CPU {s['proxy_cpu']}, backend, OTLP sink and load "
        f"generators on CPU {s['load_cpu']}. wrk -t1 -c{s['connections']}, {s['rounds']} x "
        f"{s['wrk_seconds']:g} s after a {s['warmup_seconds']:g} s warm-up; fortio "
        f"{s['rate']} req/s, -c {s['latency_connections']}, {s['latency_seconds']:g} s. "
        f"Slow collector: answers after {extra['slow_delay']:g} s. Envoy's OTel batching: "
        f"{ENVOY_FLUSH['tracing.opentelemetry.min_flush_spans']} spans or "
        f"{ENVOY_FLUSH['tracing.opentelemetry.flush_interval_ms']} ms.",
        "",
        "Two-sidecar path (wrk/fortio -> A -> mTLS, HTTP/2 -> B -> backend), A starting "
        "every trace; *vs off* is req/s against the same proxy with tracing off:",
        "",
        results_table(results, s["rate"]),
    ]
    parts += goal_section(goal_checks(results))
    parts += comparison(results)
    parts += notes_section(tracing_notes(results, sink), "configuration", meta)
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = load_parser(
        (__doc__ or "").split("\n")[0],
        ALL_TARGETS,
        rounds="wrk rounds (median reported)",
        cpu="core for both sidecars",
        readme="rewrite the README's tracing results",
        keep="keep the certificates, configs and logs",
    )
    p.set_defaults(rounds=5)
    p.add_argument(
        "--slow-delay", type=float, default=2.0, help="seconds the slow collector takes to answer"
    )
    return parse_load_args(p, argv, ALL_TARGETS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    proxies = sorted({CONFIGS[n].proxy for n in args.proxies})
    tools = install_tools(proxies)
    settings = settings_from(args)
    versions: dict[str, str] = {}
    if "meshpy" in tools:
        versions["meshpy"] = meshpy_version(tools["meshpy"])
    if "envoy" in tools:
        versions["envoy"] = program_version("envoy", tools["envoy"])
    meta = run_meta(
        versions | load_versions(tools),
        settings,
        tracing={"slow_delay": args.slow_delay, "envoy_runtime": ENVOY_FLUSH},
        identities={"server": SERVER_ID, "client": CLIENT_ID},
        meshpy_build=meshpy_build(tools["meshpy"]) if "meshpy" in tools else None,
    )
    os.sched_setaffinity(0, {args.load_cpu})  # keep this script off the sidecars' core
    with scratch("meshpy-tracing-", args.keep_tmp, "certificates, configs and logs") as (
        tmp,
        procs,
    ):
        bench = Bench(tools, settings, procs, tmp)
        t = TracingBench(bench, make_pki(tmp / "pki"), free_port(), free_port())
        results, sink = run_all(t, args.proxies, args.slow_delay)
    meta["sink"] = sink
    text = report(results, meta, sink)
    readme = (MARK_START, MARK_END, "Tracing: what it costs on the two-sidecar path")
    return publish(text, results, meta, "tracing", readme if args.write_readme else None)


if __name__ == "__main__":
    sys.exit(main())
