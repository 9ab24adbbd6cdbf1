#!/usr/bin/env python3
"""Compare meshpy and Envoy as a sidecar pair with traffic management on.

The path is mtls.py's two-sidecar path: wrk or fortio (plaintext HTTP/1.1,
keep-alive, ``Host: payment``) -> sidecar A (outbound) -> mTLS, HTTP/2 ->
sidecar B (inbound) -> backend. What changes is A's outbound listener: it
routes by virtual host and rules instead of sending everything to one
cluster, and its cluster balances over two endpoints:

- a virtual host ``payment`` with four rules: an Exact path with a header
  match, a RegularExpression path, a PathPrefix ``/refunds`` and the
  PathPrefix ``/`` catch-all that the benchmark's requests hit;
- the same retry policy on each rule (2 retries on 503, 25 ms backoff); the
  backend never fails, so retries cost only their bookkeeping;
- the cluster's balancer (meshpy: peak EWMA; Envoy, which has none: least
  request) over two endpoints, B's two inbound listeners on two ports, both
  to the same backend; the cluster's retry budget (20 %).

Before measuring, probes check that each pair routes as configured (each
rule's request reaches the backend with the path its rule rewrote to, the
load's request is the catch-all's) and that B requires a client
certificate on both ports. After it, B's counters say how the balancer
split the requests between the two ports.

Reported, like mtls.py: max requests/s (median of ``--rounds`` wrk rounds),
the pair's CPU, p50/p99 at a fixed rate (fortio) with what the pair adds to
a direct run, and the meshpy/Envoy ratios. The machinery is the ``harness``
package next to this script. Run it with the project's .venv python
(``make bench-traffic``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.backend import BODY
from harness.cli import exit_on_sigterm, load_parser, parse_load_args, settings_from
from harness.common import Json, log
from harness.envoy_conf import (
    envoy_argv,
    envoy_cluster,
    envoy_downstream_mtls,
    envoy_hcm_listener,
    envoy_listener,
    envoy_static,
    envoy_upstream_mtls,
)
from harness.identities import SERVER_ID, Pki
from harness.measure import Bench, Target, measure_latency, measure_round, start_backend
from harness.meshpy_conf import meshpy_head, meshpy_identity, meshpy_launch
from harness.net import fetch, free_port
from harness.pairs import Pair, start_sidecars
from harness.pki import make_pki
from harness.processes import Launch, scratch
from harness.ready import Probe
from harness.report import (
    added,
    direct_run,
    failed_row,
    flagged,
    fmt,
    goal_section,
    heading,
    mib,
    notes,
    notes_section,
    pct,
    rate_cell,
    ratio,
    table,
)
from harness.results import publish
from harness.routes import Retry, Rule, envoy_route, meshpy_rule
from harness.runner import collect, interleave, start_targets, tmp_as_var
from harness.tools import install_tools
from harness.versions import (
    load_versions,
    meshpy_build,
    meshpy_version,
    program_version,
    run_meta,
)

MARK_START = "<!-- traffic:start -->"
MARK_END = "<!-- traffic:end -->"
ALL_TARGETS = ("meshpy", "envoy", "direct")
SIDECARS = ("meshpy", "envoy")
HOST = "payment"  # the virtual host; wrk and fortio send it as Host
LOAD_PATH = "/"  # what the load asks for: only the catch-all rule matches it
RETRY = Retry(attempts=2, codes=(503,), backoff_ms=25)  # on every rule
RETRY_BUDGET_PERCENT = 20
RETRY_BUDGET_MIN = 10  # meshpy: retries per second; Envoy: retries in flight
# Backend locations that answer with the path they got, so that a probe sees
# what a rule's rewrite sent; every other path gets BODY, as in run.py.
ECHO_LOCATIONS = """
        location /echo/ {
            default_type text/plain;
            return 200 "$uri\\n";
        }"""


# ---------------------------------------------------------------------------
# The routes, and the requests that check them
# ---------------------------------------------------------------------------


RULES = (
    Rule("Exact", "/charge", header=("x-bench-route", "exact"), rewrite="/echo/exact"),
    Rule("RegularExpression", "/v[0-9]+/charges/[0-9a-f]{8}", rewrite="/echo/regex"),
    Rule("PathPrefix", "/refunds", rewrite="/echo/refunds"),
    Rule("PathPrefix", "/"),  # the catch-all: the load's requests
)

# (path, extra headers, Host, expected status, expected body): what the probe sends
# through A, and what must come back.
ROUTING_CHECKS: tuple[tuple[str, dict[str, str], str, int, str | None], ...] = (
    ("/charge", {"x-bench-route": "exact"}, HOST, 200, "/echo/exact\n"),
    ("/charge", {"x-bench-route": "other"}, HOST, 200, BODY),  # header differs: catch-all
    ("/v2/charges/0badf00d", {}, HOST, 200, "/echo/regex\n"),
    ("/v2/charges/0badf00d/x", {}, HOST, 200, BODY),  # regex must match the whole path
    ("/refunds/17", {}, HOST, 200, "/echo/refunds/17\n"),
    ("/refundsx", {}, HOST, 200, BODY),  # prefixes match whole segments
    (LOAD_PATH, {}, HOST, 200, BODY),  # the load's request
    (LOAD_PATH, {}, "other", 404, None),  # no virtual host for it
)


# ---------------------------------------------------------------------------
# Sidecar configurations
# ---------------------------------------------------------------------------


def addr(port: int) -> str:
    return f"127.0.0.1:{port}"


def envoy_inbound(tmp: Path, pki: Pki, ports: list[int], backend: int, admin: int) -> Path:
    """Envoy B: one mTLS listener per port (client certificate required) -> the backend."""
    tls = envoy_downstream_mtls(pki.server, pki.root)
    listeners = [
        envoy_listener(f"inbound_{i}", port, "backend", "AUTO", tls) for i, port in enumerate(ports)
    ]
    conf = tmp / "envoy-inbound.yaml"
    conf.write_text(envoy_static(listeners, [envoy_cluster("backend", backend)], admin))
    return conf


def envoy_outbound(tmp: Path, pki: Pki, port: int, upstreams: list[int], admin: int) -> Path:
    """Envoy A: HTTP/1.1 listener with the routes -> least request over B's ports, mTLS."""
    routes = json.dumps([envoy_route(r, "payment", RETRY) for r in RULES])
    route_config = f"""name: outbound
virtual_hosts:
- name: {HOST}
  domains: ["{HOST}"]
  routes: {routes}
"""
    budget = f"""    circuit_breakers:
      thresholds:
      - retry_budget:
          budget_percent: {{value: {RETRY_BUDGET_PERCENT}}}
          min_retry_concurrency: {RETRY_BUDGET_MIN}
"""
    extra = budget + envoy_upstream_mtls(pki.client, pki.root)
    listener = envoy_hcm_listener("outbound", port, "HTTP1", "", route_config)
    cluster = envoy_cluster("payment", upstreams, extra, lb_policy="LEAST_REQUEST")
    conf = tmp / "envoy-outbound.yaml"
    conf.write_text(envoy_static([listener], [cluster], admin))
    return conf


def meshpy_inbound(tmp: Path, pki: Pki, ports: list[int], backend: int, admin: int) -> Path:
    """meshpy B: one listener per port, tls strict (client certificate required) -> backend."""
    listeners = [
        {
            "name": f"inbound-{i}",
            "address": addr(port),
            "protocol": "http",
            "cluster": "backend",
            "tls": {"mode": "strict"},
        }
        for i, port in enumerate(ports)
    ]
    backend_cluster = {
        "name": "backend",
        "endpoints": [addr(backend)],
        "lb": "round_robin",
        "protocol": "http1",
    }
    conf = tmp / "meshpy-inbound.yaml"
    conf.write_text(
        meshpy_head(admin, meshpy_identity(pki.server, pki.root))
        + f"listeners: {json.dumps(listeners)}\nclusters: {json.dumps([backend_cluster])}\n"
    )
    return conf


def meshpy_outbound(tmp: Path, pki: Pki, port: int, upstreams: list[int], admin: int) -> Path:
    """meshpy A: listener with the routes -> peak EWMA over B's ports, mTLS (HTTP/2)."""
    listener = {
        "name": "outbound",
        "address": addr(port),
        "protocol": "http",
        "routes": [
            {
                "name": HOST,
                "hosts": [HOST],
                "rules": [meshpy_rule(r, "payment", RETRY) for r in RULES],
            }
        ],
    }
    cluster = {
        "name": "payment",
        "endpoints": [addr(p) for p in upstreams],
        "lb": "peak_ewma",
        "tls": {"identity": SERVER_ID},
        "retry_budget": {
            "percent": RETRY_BUDGET_PERCENT,
            "min_retries_per_second": RETRY_BUDGET_MIN,
        },
    }
    conf = tmp / "meshpy-outbound.yaml"
    conf.write_text(
        meshpy_head(admin, meshpy_identity(pki.client, pki.root))
        + f"listeners: {json.dumps([listener])}\nclusters: {json.dumps([cluster])}\n"
    )
    return conf


# (tmp, pki, own port(s), upstream port(s), admin port) -> config file
InboundConf = Callable[[Path, Pki, list[int], int, int], Path]
OutboundConf = Callable[[Path, Pki, int, list[int], int], Path]


@dataclass
class Sidecar:
    name: str
    inbound: InboundConf
    outbound: OutboundConf
    launch: Callable[[Path, int], Launch]  # (config file, admin port) -> how to start it
    version: Callable[[], str]


def make_sidecars(tools: dict[str, str]) -> dict[str, Sidecar]:
    def envoy(conf: Path, admin: int) -> Launch:
        return Launch(envoy_argv(tools["envoy"], conf), [f"http://{addr(admin)}/ready"])

    sidecars = {}
    if "meshpy" in tools:
        sidecars["meshpy"] = Sidecar(
            "meshpy",
            meshpy_inbound,
            meshpy_outbound,
            lambda conf, admin: meshpy_launch(tools["meshpy"], conf, admin),
            lambda: meshpy_version(tools["meshpy"]),
        )
    if "envoy" in tools:
        sidecars["envoy"] = Sidecar(
            "envoy",
            envoy_inbound,
            envoy_outbound,
            envoy,
            lambda: program_version("envoy", tools["envoy"]),
        )
    return sidecars


# ---------------------------------------------------------------------------
# Probes and counters
# ---------------------------------------------------------------------------


def get(url: str, headers: dict[str, str]) -> tuple[int | None, str]:
    """(status, body) of GET url with these headers; status None, and the error, if none."""
    status, body, why = fetch(url, headers, timeout=2.0)
    return status, body or why


def probe_routed(port: int) -> Probe:
    """A probe: None once A answers the load's request (Host payment, /) with BODY."""

    def probe() -> str | None:
        status, body = get(f"http://{addr(port)}{LOAD_PATH}", {"Host": HOST})
        return None if status == 200 and body == BODY else f"gave {status} {body[:60]!r}"

    return probe


def check_routing(name: str, port: int) -> list[Json]:
    """Every ROUTING_CHECKS request through A; raise if one came back otherwise."""
    seen = []
    for path, headers, host, status, body in ROUTING_CHECKS:
        got_status, got_body = get(f"http://{addr(port)}{path}", {"Host": host, **headers})
        seen.append({"path": path, "headers": headers, "host": host, "status": got_status})
        if got_status != status or (body is not None and got_body != body):
            raise RuntimeError(
                f"{name}: GET {path} (Host {host}, headers {headers}) gave {got_status} "
                f"{got_body[:60]!r}, expected {status} {body!r}"
            )
    return seen


def inbound_requests(kind: str, admin: int) -> dict[str, int]:
    """Requests B has served so far, per inbound listener, from its admin counters."""
    if kind == "meshpy":
        _, text = get(f"http://{addr(admin)}/metrics", {})
        pattern = r'(?m)^meshpy_requests_total\{[^}]*listener="(inbound-\d+)"[^}]*\} (\d+)'
    else:
        _, text = get(f"http://{addr(admin)}/stats?filter=downstream_rq_total", {})
        pattern = r"(?m)^http\.(inbound_\d+)\.downstream_rq_total: (\d+)"
    counts: dict[str, int] = {}
    for listener, value in re.findall(pattern, text):
        counts[listener] = counts.get(listener, 0) + int(value)
    return counts


def retries_sent(kind: str, admin: int) -> int | None:
    """Retries A has sent to the payment cluster so far, from its admin counters."""
    if kind == "meshpy":
        _, text = get(f"http://{addr(admin)}/metrics", {})
        pattern = r'(?m)^meshpy_retries_total\{cluster="payment",result="sent"\} (\d+)'
    else:
        _, text = get(
            f"http://{addr(admin)}/stats?filter=^cluster\\.payment\\.upstream_rq_retry$", {}
        )
        pattern = r"(?m)^cluster\.payment\.upstream_rq_retry: (\d+)"
    found = re.search(pattern, text)
    return int(found.group(1)) if found else None


# ---------------------------------------------------------------------------
# The pairs
# ---------------------------------------------------------------------------


@dataclass
class TrafficPair(Pair):
    """A pair whose B has two inbound ports; both sidecars have an admin port."""

    inbound_ports: tuple[int, ...] = ()
    inbound_admin: int = 0
    outbound_admin: int = 0


def start_pair(b: Bench, pki: Pki, sidecar: Sidecar) -> TrafficPair:
    """Start B (two mTLS ports), check it requires a client certificate, start A, probe."""
    name = sidecar.name
    in_ports, out_port = [free_port(), free_port()], free_port()
    in_admin, out_admin = free_port(), free_port()
    pair = TrafficPair(
        name,
        f"http://{addr(out_port)}{LOAD_PATH}",
        headers=[f"Host: {HOST}"],
        inbound_port=in_ports[0],
        inbound_ports=tuple(in_ports),
        inbound_admin=in_admin,
        outbound_admin=out_admin,
    )

    def outbound() -> Launch:
        conf = sidecar.outbound(b.tmp, pki, out_port, in_ports, out_admin)
        return sidecar.launch(conf, out_admin)

    def check() -> None:
        pair.result["routing_checks"] = check_routing(name, out_port)
        log(f"{name}: routes checked ({len(ROUTING_CHECKS)} requests)")

    conf = sidecar.inbound(b.tmp, pki, in_ports, b.backend_port, in_admin)
    inbound = sidecar.launch(conf, in_admin)
    start_sidecars(
        b,
        pair,
        pki,
        inbound=inbound,
        ports=in_ports,
        outbound=outbound,
        probe=probe_routed(out_port),
        check=check,
    )
    pair.result["inbound_before"] = inbound_requests(name, in_admin)
    return pair


def split(p: TrafficPair) -> Json:
    """How B's two ports shared the requests since the probes, and A's retries."""
    before = p.result.pop("inbound_before")
    after = inbound_requests(p.name, p.inbound_admin)
    counts = {k: v - before.get(k, 0) for k, v in sorted(after.items())}
    return {"per_port": counts, "retries": retries_sent(p.name, p.outbound_admin)}


def run_all(b: Bench, pki: Pki, names: list[str], sidecars: dict[str, Sidecar]) -> dict[str, Json]:
    """Start the pairs; latency runs, then wrk rounds, each interleaved, as run.py does."""
    describe = tmp_as_var(b)
    start_backend(b, ECHO_LOCATIONS)

    def start(name: str) -> Target:
        if name == "direct":
            url = f"http://{addr(b.backend_port)}{LOAD_PATH}"
            return Target("direct", url, headers=[f"Host: {HOST}"])
        return start_pair(b, pki, sidecars[name])

    def extra(t: Target) -> Json:
        return {"pair": True, "split": split(t)} if isinstance(t, TrafficPair) else {}

    targets, errors = start_targets(names, start, describe)
    interleave(
        b, errors, targets, [measure_latency] + [measure_round] * b.settings.rounds, describe
    )
    return collect(names, errors, targets, extra)


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def ok_pairs(results: dict[str, Json]) -> dict[str, Json]:
    return {n: r for n, r in results.items() if "error" not in r and r.get("pair")}


def split_text(r: Json) -> str:
    counts = list(r["split"]["per_port"].values()) if "split" in r else []
    total = sum(counts)
    if len(counts) < 2 or not total:
        return "-"
    return " / ".join(f"{c * 100 / total:.0f}" for c in counts)


def path_table(results: dict[str, Json], rate: int) -> str:
    head = ["path", "max req/s (median)", "wrk errors", "pair core %", "CPU µs/req"]
    head += ["CPU µs/req @rate", f"p50 µs @{rate}", f"p99 µs @{rate}", "added p50 µs"]
    head += ["added p99 µs", "rate achieved", "B ports split %", "RSS load MiB"]
    direct = direct_run(results)
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append(failed_row(name, r, 11))
            continue
        lat, errs, is_pair = r["latency"], r["wrk_errors"], bool(r.get("pair"))
        add50, add99 = (added(r, direct, k) if is_pair else None for k in ("p50_us", "p99_us"))
        rows.append(
            [
                f"{name} pair" if is_pair else name,
                fmt(r["rps"]),
                flagged(errs),
                pct(r.get("proxy_core_util")),
                fmt(r.get("cpu_us_per_req"), 1),
                fmt(lat.get("cpu_us_per_req"), 1),
                fmt(lat["p50_us"]),
                fmt(lat["p99_us"]),
                fmt(add50),
                fmt(add99),
                rate_cell(lat),
                split_text(r),
                mib(r.get("rss_load_kb")),
            ]
        )
    return table(head, rows)


def ratio_rows(results: dict[str, Json]) -> list[list[str]]:
    """meshpy / Envoy, each figure with which way is better."""
    pairs, direct = ok_pairs(results), direct_run(results)
    m, e = pairs.get("meshpy"), pairs.get("envoy")
    if not m or not e:
        return []

    def row(what: str, a: float | None, b: float | None, better: str) -> list[str]:
        return [what, ratio(a, b), better]

    ml, el, rate = m["latency"], e["latency"], m["latency"]["target_rate"]
    rows = [
        row("max req/s", m["rps"], e["rps"], "higher"),
        row(f"p50 at {rate} req/s", ml["p50_us"], el["p50_us"], "lower"),
        row(f"p99 at {rate} req/s", ml["p99_us"], el["p99_us"], "lower"),
    ]
    if direct:
        rows += [
            row("added p50", added(m, direct, "p50_us"), added(e, direct, "p50_us"), "lower"),
            row("added p99", added(m, direct, "p99_us"), added(e, direct, "p99_us"), "lower"),
        ]
    rows += [
        row("CPU µs/req (max load)", m.get("cpu_us_per_req"), e.get("cpu_us_per_req"), "lower"),
        row("CPU µs/req (fixed rate)", ml["cpu_us_per_req"], el["cpu_us_per_req"], "lower"),
        row("RSS under load", m.get("rss_load_kb"), e.get("rss_load_kb"), "lower"),
    ]
    return rows


def goal_checks(results: dict[str, Json]) -> list[tuple[str, str, bool]]:
    pairs = ok_pairs(results)
    m, e = pairs.get("meshpy"), pairs.get("envoy")
    if not m or not e:
        return []
    rps = m["rps"] / e["rps"]
    p99 = m["latency"]["p99_us"] / e["latency"]["p99_us"]
    return [
        ("max req/s >= 1.0x Envoy pair's", f"{rps:.2f}x", rps >= 1.0),
        ("p99 at the fixed rate <= Envoy pair's", f"{p99:.2f}x Envoy's", p99 <= 1.0),
    ]


def traffic_notes(results: dict[str, Json]) -> list[str]:
    out = notes(results)
    for name, r in ok_pairs(results).items():
        counts = list(r["split"]["per_port"].values())
        if len(counts) != 2 or min(counts) == 0:
            out.append(f"{name}: B's two ports did not both serve requests ({counts})")
        retries = r["split"].get("retries")
        if retries:
            out.append(f"{name}: A retried {retries} requests")
    return out


def report(results: dict[str, Json], meta: Json) -> str:
    s = meta["settings"]
    parts = [
        *heading(meta),
        f"Settings: both sidecars on CPU {s['proxy_cpu']}, backend and load generators on CPU "
        f"{s['load_cpu']}; wrk -t1 -c{s['connections']}, {s['rounds']} x {s['wrk_seconds']:g} s "
        f"after a {s['warmup_seconds']:g} s warm-up; fortio {s['rate']} req/s, "
        f"-c {s['latency_connections']}, {s['latency_seconds']:g} s; every request "
        f"`GET {LOAD_PATH}` with `Host: {HOST}`.",
        "",
        "Two-sidecar path with routes, retries and two endpoints "
        "(wrk/fortio -> A -> mTLS, HTTP/2 -> B -> backend):",
        "",
        path_table(results, s["rate"]),
    ]
    sent = [f"{n} {fmt(r['split']['retries'])}" for n, r in ok_pairs(results).items()]
    if sent:
        parts += ["", f"Retries A sent over the run (the backend never fails): {', '.join(sent)}."]
    ratios = ratio_rows(results)
    if ratios:
        parts += ["", "meshpy pair / Envoy pair:", "", table(["figure", "ratio", "better"], ratios)]
    parts += goal_section(goal_checks(results))
    parts += notes_section(traffic_notes(results), "path", meta)
    return "\n".join(parts)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = load_parser(
        (__doc__ or "").split("\n")[0],
        ALL_TARGETS,
        rounds="wrk rounds (the median is reported)",
        cpu="core for both sidecars",
        readme="rewrite the README's traffic results",
        keep="keep the certificates, configs and logs",
    )
    return parse_load_args(p, argv, ALL_TARGETS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    tools = install_tools([n for n in args.proxies if n in SIDECARS])
    sidecars = make_sidecars(tools)
    settings = settings_from(args)
    meta = run_meta(
        {name: s.version() for name, s in sidecars.items()} | load_versions(tools),
        settings,
        routes={
            "rules": [asdict(r) for r in RULES],
            "retry": RETRY.meshpy(),
            "retry_budget": [RETRY_BUDGET_PERCENT, RETRY_BUDGET_MIN],
        },
        meshpy_build=meshpy_build(tools["meshpy"]) if "meshpy" in tools else None,
    )
    os.sched_setaffinity(0, {args.load_cpu})  # keep this script off the sidecars' core
    kept = "certificates, configs and logs"
    with scratch("meshpy-traffic-", args.keep_tmp, kept) as (tmp, procs):
        bench = Bench(tools, settings, procs, tmp)
        results = run_all(bench, make_pki(tmp / "pki"), args.proxies, sidecars)
    text = report(results, meta)
    readme = (MARK_START, MARK_END, "Traffic management: routes, retries, two endpoints")
    return publish(text, results, meta, "traffic", readme if args.write_readme else None)


if __name__ == "__main__":
    sys.exit(main())
