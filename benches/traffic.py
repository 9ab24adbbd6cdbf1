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
a direct run, and the meshpy/Envoy ratios. Helpers come from run.py and
mtls.py. Run it with the project's .venv python (``make bench-traffic``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.backend import BODY
from harness.cli import load_parser, on_sigterm, parse_load_args
from harness.common import Json, log
from harness.envoy_conf import (
    HCM,
    ROUTER,
    TLS_SOCKETS,
    envoy_cluster,
    envoy_listener,
    envoy_tls_common,
    envoy_upstream_mtls,
)
from harness.identities import SERVER_ID, Pki
from harness.measure import (
    Bench,
    Settings,
    Target,
    check_alive,
    measure_latency,
    measure_round,
    start_backend,
    summarize,
)
from harness.meshpy_conf import meshpy_identity
from harness.net import free_port
from harness.pairs import Pair, start_sidecar
from harness.paths import REPO
from harness.pki import make_pki
from harness.processes import Launch, Processes
from harness.procfs import memory_kb
from harness.ready import Probe
from harness.report import (
    added,
    fmt,
    goal_section,
    mib,
    notes,
    notes_section,
    pct,
    sustained,
    table,
)
from harness.results import save_json, write_readme
from harness.tlsprobe import check_client_cert_required, probe_mtls
from harness.tools import install_tools
from harness.versions import machine_info, meshpy_build, meshpy_version, version_of

MARK_START = "<!-- traffic:start -->"
MARK_END = "<!-- traffic:end -->"
ALL_TARGETS = ("meshpy", "envoy", "direct")
SIDECARS = ("meshpy", "envoy")
HOST = "payment"  # the virtual host; wrk and fortio send it as Host
LOAD_PATH = "/"  # what the load asks for: only the catch-all rule matches it
RETRY_ATTEMPTS, RETRY_CODES, RETRY_BACKOFF_MS = 2, [503], 25
RETRY: Json = {"attempts": RETRY_ATTEMPTS, "codes": RETRY_CODES, "backoff": f"{RETRY_BACKOFF_MS}ms"}
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
# The routes: one description, written as meshpy's rules and Envoy's routes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A rule of the virtual host; `rewrite` is the path its requests reach the backend with."""

    kind: str  # Exact, RegularExpression or PathPrefix
    path: str
    header: tuple[str, str] | None = None  # an exact header match
    rewrite: str | None = None  # Exact, RegularExpression: the new path; PathPrefix: the prefix


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


def meshpy_rule(rule: Rule) -> Json:
    match: Json = {"path": {"type": rule.kind, "value": rule.path}}
    if rule.header:
        match["headers"] = [{"name": rule.header[0], "value": rule.header[1]}]
    out: Json = {"matches": [match], "backends": [{"cluster": "payment"}], "retry": RETRY}
    if rule.rewrite:
        kind = "ReplacePrefixMatch" if rule.kind == "PathPrefix" else "ReplaceFullPath"
        out["filters"] = {"url_rewrite": {"path": {"type": kind, "value": rule.rewrite}}}
    return out


def envoy_retry_policy() -> Json:
    return {
        # meshpy always retries connection failures too; none happen here.
        "retry_on": "connect-failure,retriable-status-codes",
        "retriable_status_codes": RETRY_CODES,
        "num_retries": RETRY_ATTEMPTS,
        "retry_back_off": {"base_interval": f"{RETRY_BACKOFF_MS / 1000:g}s"},
    }


def envoy_route(rule: Rule) -> Json:
    match: Json
    if rule.kind == "Exact":
        match = {"path": rule.path}
    elif rule.kind == "RegularExpression":
        match = {"safe_regex": {"regex": rule.path}}
    elif rule.path == "/":
        match = {"prefix": "/"}
    else:  # meshpy's PathPrefix matches whole segments, as this does
        match = {"path_separated_prefix": rule.path}
    if rule.header:
        name, value = rule.header
        match["headers"] = [{"name": name, "string_match": {"exact": value}}]
    action: Json = {"cluster": "payment", "retry_policy": envoy_retry_policy()}
    if rule.rewrite and rule.kind == "PathPrefix":
        action["prefix_rewrite"] = rule.rewrite
    elif rule.rewrite:
        action["regex_rewrite"] = {"pattern": {"regex": "^.*$"}, "substitution": rule.rewrite}
    return {"match": match, "route": action}


# ---------------------------------------------------------------------------
# Sidecar configurations
# ---------------------------------------------------------------------------


def addr(port: int) -> str:
    return f"127.0.0.1:{port}"


def envoy_admin(port: int) -> str:
    return f"admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}\n"


def envoy_inbound(tmp: Path, pki: Pki, ports: list[int], backend: int, admin: int) -> Path:
    """Envoy B: one mTLS listener per port (client certificate required) -> the backend."""
    tls = f"""      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": {TLS_SOCKETS}.DownstreamTlsContext
          require_client_certificate: true
{envoy_tls_common(pki.server, pki.root, ["h2", "http/1.1"], 10)}"""
    listeners = "".join(
        envoy_listener(f"inbound_{i}", port, "backend", "AUTO", tls) for i, port in enumerate(ports)
    )
    conf = tmp / "envoy-inbound.yaml"
    conf.write_text(
        envoy_admin(admin)
        + "static_resources:\n  listeners:\n"
        + listeners
        + "  clusters:\n"
        + envoy_cluster("backend", backend)
    )
    return conf


def envoy_outbound(tmp: Path, pki: Pki, port: int, upstreams: list[int], admin: int) -> Path:
    """Envoy A: HTTP/1.1 listener with the routes -> least request over B's ports, mTLS."""
    routes = json.dumps([envoy_route(r) for r in RULES])
    endpoints = "".join(
        f"        - endpoint: {{address: {{socket_address: "
        f"{{address: 127.0.0.1, port_value: {p}}}}}}}\n"
        for p in upstreams
    )
    conf = tmp / "envoy-outbound.yaml"
    conf.write_text(
        envoy_admin(admin)
        + f"""static_resources:
  listeners:
  - name: outbound
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: outbound
          codec_type: HTTP1
          route_config:
            name: outbound
            virtual_hosts:
            - name: {HOST}
              domains: ["{HOST}"]
              routes: {routes}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": {ROUTER}}}
  clusters:
  - name: payment
    type: STATIC
    connect_timeout: 1s
    lb_policy: LEAST_REQUEST
    circuit_breakers:
      thresholds:
      - retry_budget:
          budget_percent: {{value: {RETRY_BUDGET_PERCENT}}}
          min_retry_concurrency: {RETRY_BUDGET_MIN}
    load_assignment:
      cluster_name: payment
      endpoints:
      - lb_endpoints:
{endpoints}{envoy_upstream_mtls(pki.client, pki.root)}"""
    )
    return conf


def meshpy_head(pki_ident: str, admin: int) -> str:
    return f"admin: {addr(admin)}\nworkers: 1\n{pki_ident}"


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
        meshpy_head(meshpy_identity(pki.server, pki.root), admin)
        + f"listeners: {json.dumps(listeners)}\nclusters: {json.dumps([backend_cluster])}\n"
    )
    return conf


def meshpy_outbound(tmp: Path, pki: Pki, port: int, upstreams: list[int], admin: int) -> Path:
    """meshpy A: listener with the routes -> peak EWMA over B's ports, mTLS (HTTP/2)."""
    listener = {
        "name": "outbound",
        "address": addr(port),
        "protocol": "http",
        "routes": [{"name": HOST, "hosts": [HOST], "rules": [meshpy_rule(r) for r in RULES]}],
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
        meshpy_head(meshpy_identity(pki.client, pki.root), admin)
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
    argv: Callable[[Path], list[str]]  # config file -> command line
    ready_path: str  # on the admin port
    version: Callable[[], str]


def make_sidecars(tools: dict[str, str]) -> dict[str, Sidecar]:
    envoy_flags = ["--concurrency", "1", "--disable-hot-restart", "--log-level", "warning"]
    sidecars = {}
    if "meshpy" in tools:
        sidecars["meshpy"] = Sidecar(
            "meshpy",
            meshpy_inbound,
            meshpy_outbound,
            lambda conf: [tools["meshpy"], "proxy", "run", "--config", str(conf)],
            "/ready",
            lambda: meshpy_version(tools["meshpy"]),
        )
    if "envoy" in tools:
        pattern = r"version: \w+/(\d+\.\d+\.\d+)/"
        sidecars["envoy"] = Sidecar(
            "envoy",
            envoy_inbound,
            envoy_outbound,
            lambda conf: [tools["envoy"], "-c", str(conf), *envoy_flags],
            "/ready",
            lambda: version_of([tools["envoy"], "--version"], pattern),
        )
    return sidecars


# ---------------------------------------------------------------------------
# Probes and counters
# ---------------------------------------------------------------------------


def get(url: str, headers: dict[str, str], timeout: float = 2.0) -> tuple[int | None, str]:
    """(status, body) of GET url with these headers; status None if no response."""
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""
    except (OSError, ValueError) as err:
        return None, str(err)


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
    conf = sidecar.inbound(b.tmp, pki, in_ports, b.backend_port, in_admin)
    ready = [f"http://{addr(in_admin)}{sidecar.ready_path}"]
    probes = [probe_mtls(port, pki) for port in in_ports]
    pair.inbound = start_sidecar(b, f"{name}-inbound", Launch(sidecar.argv(conf), ready), probes)
    try:
        for port in in_ports:
            check_client_cert_required(f"{name}-inbound", port, pki)
        conf = sidecar.outbound(b.tmp, pki, out_port, in_ports, out_admin)
        ready = [f"http://{addr(out_admin)}{sidecar.ready_path}"]
        launch = Launch(sidecar.argv(conf), ready)
        pair.proc = start_sidecar(b, f"{name}-outbound", launch, [probe_routed(out_port)])
        pair.result["routing_checks"] = check_routing(name, out_port)
    except RuntimeError:
        for proc in pair.procs():
            b.procs.stop(proc)
        raise
    log(f"{name}: routes checked ({len(ROUTING_CHECKS)} requests)")
    time.sleep(1.0)
    pair.result["rss_idle_kb"], pair.result["pss_idle_kb"] = memory_kb(pair.tree())
    pair.result["inbound_before"] = inbound_requests(name, in_admin)
    return pair


def guarded(b: Bench, errors: dict[str, str], t: Target, step: Callable[[], None]) -> None:
    """Run one measurement step; a failure stops the target and is recorded."""
    if t.name in errors:
        return
    try:
        step()
        check_alive(b, t)
    except RuntimeError as err:
        log(f"{t.name} failed: {err}")
        errors[t.name] = str(err).replace(str(b.tmp), "$TMP")
        for proc in t.procs() if isinstance(t, Pair) else []:
            if proc in b.procs.procs:
                b.procs.stop(proc)


def split(p: TrafficPair) -> Json:
    """How B's two ports shared the requests since the probes, and A's retries."""
    before = p.result.pop("inbound_before")
    after = inbound_requests(p.name, p.inbound_admin)
    counts = {k: v - before.get(k, 0) for k, v in sorted(after.items())}
    return {"per_port": counts, "retries": retries_sent(p.name, p.outbound_admin)}


def run_all(b: Bench, pki: Pki, names: list[str], sidecars: dict[str, Sidecar]) -> dict[str, Json]:
    """Start the pairs; latency runs, then wrk rounds, each interleaved, as run.py does."""
    errors: dict[str, str] = {}
    targets: list[Target] = []
    start_backend(b, ECHO_LOCATIONS)
    for name in names:
        if name == "direct":
            url = f"http://{addr(b.backend_port)}{LOAD_PATH}"
            targets.append(Target("direct", url, headers=[f"Host: {HOST}"]))
            continue
        try:
            targets.append(start_pair(b, pki, sidecars[name]))
        except RuntimeError as err:
            log(f"{name} failed: {err}")
            errors[name] = str(err).replace(str(b.tmp), "$TMP")
    for step in [measure_latency] + [measure_round] * b.settings.rounds:
        for t in targets:
            guarded(b, errors, t, partial(step, b, t))
    done = {t.name: t for t in targets}
    results: dict[str, Json] = {}
    for name in names:
        if name in errors:
            results[name] = {"error": errors[name]}
            continue
        t = done[name]
        results[name] = summarize(t)
        if isinstance(t, TrafficPair):
            results[name]["pair"] = True
            results[name]["split"] = split(t)
    return results


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
    direct = results.get("direct")
    direct = direct if direct and "error" not in direct else None
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append([name, "failed: " + r["error"].splitlines()[0]] + [""] * 11)
            continue
        lat, errs, is_pair = r["latency"], r["wrk_errors"], bool(r.get("pair"))
        add50, add99 = (added(r, direct, k) if is_pair else None for k in ("p50_us", "p99_us"))
        rows.append(
            [
                f"{name} pair" if is_pair else name,
                fmt(r["rps"]),
                f"{errs} (!)" if errs else "0",
                pct(r.get("proxy_core_util")),
                fmt(r.get("cpu_us_per_req"), 1),
                fmt(lat.get("cpu_us_per_req"), 1),
                fmt(lat["p50_us"]),
                fmt(lat["p99_us"]),
                fmt(add50),
                fmt(add99),
                fmt(lat["actual_rate"]) + ("" if sustained(lat) else " (!)"),
                split_text(r),
                mib(r.get("rss_load_kb")),
            ]
        )
    return table(head, rows)


def ratio_rows(results: dict[str, Json]) -> list[list[str]]:
    """meshpy / Envoy, each figure with which way is better."""
    pairs, direct = ok_pairs(results), results.get("direct")
    m, e = pairs.get("meshpy"), pairs.get("envoy")
    if not m or not e:
        return []
    direct = direct if direct and "error" not in direct else None

    def row(what: str, a: float | None, b: float | None, better: str) -> list[str]:
        return [what, "-" if a is None or not b else f"{a / b:.2f}x", better]

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
    s, mach = meta["settings"], meta["machine"]
    parts = [
        f"Run on {meta['date']}: {mach['cpu_model']} ({mach['cpus']} CPUs), {mach['memory']} "
        f"RAM, Linux {mach['kernel']}, {mach['os']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
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
    signal.signal(signal.SIGTERM, on_sigterm)
    tools = install_tools([n for n in args.proxies if n in SIDECARS])
    sidecars = make_sidecars(tools)
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
    meta: Json = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "versions": {name: s.version() for name, s in sidecars.items()}
        | {
            "backend nginx": version_of([tools["nginx"], "-v"], r"nginx/(\S+)"),
            "wrk": version_of([tools["wrk"], "-v"], r"wrk (\S+)"),
            "fortio": version_of([tools["fortio"], "version"], r"(\d+\.\d+\.\d+)"),
        },
        "settings": asdict(settings),
        "routes": {
            "rules": [asdict(r) for r in RULES],
            "retry": RETRY,
            "retry_budget": [RETRY_BUDGET_PERCENT, RETRY_BUDGET_MIN],
        },
        "meshpy_build": meshpy_build(tools["meshpy"]) if "meshpy" in tools else None,
    }
    os.sched_setaffinity(0, {args.load_cpu})  # keep this script off the sidecars' core
    tmp = Path(tempfile.mkdtemp(prefix="meshpy-traffic-"))
    bench = Bench(tools, settings, Processes(tmp), tmp)
    try:
        results = run_all(bench, make_pki(tmp / "pki"), args.proxies, sidecars)
    finally:
        bench.procs.stop_all()
        if args.keep_tmp:
            log(f"certificates, configs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    text = report(results, meta)
    print(text)
    log(f"wrote {save_json(results, meta, 'traffic').relative_to(REPO)}")
    if args.write_readme:
        write_readme(
            text, MARK_START, MARK_END, "Traffic management: routes, retries, two endpoints"
        )
        log("updated benches/README.md")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
