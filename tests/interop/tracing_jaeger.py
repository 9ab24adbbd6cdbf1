"""The sidecars' spans in Jaeger, a collector meshpy did not write: `make interop-tracing`.

    python -m tests.interop.tracing_jaeger --jaeger .tools/bin/jaeger

Starts Jaeger all-in-one (an in-memory store, the OTLP/HTTP receiver and the query API on
free loopback ports), a control plane, and the mesh of tests/integration/test_tracing_mesh.py:
sidecars ``loadgen`` (no app), ``cart`` and ``payment`` (tests/integration/meshapp.py, which
passes the trace headers on) over mTLS, each with ``OTEL_EXPORTER_OTLP_ENDPOINT`` naming
Jaeger. One request with a known ``traceparent`` goes loadgen → cart → payment; the trace is
then read back from Jaeger's query API (``GET /api/traces/<trace id>``) and checked: four
spans, loadgen client → cart server → cart client → payment server, each the child of the
one before, with the callers' and callees' SPIFFE IDs in the tags. A second request, to a
service that does not exist, checks that Jaeger shows the failed span's error status.

Prints each check, the tree Jaeger returned and PASS or FAIL; the working folder (logs,
configs, the trace as Jaeger returned it) is kept unless the run passed. Exit status: 0
PASS, 1 FAIL, 2 when the run could not be set up (Jaeger or meshpy did not start). Every
process it starts is stopped by its own PID, and every wait has a limit. Not a pytest
module (the name does not start with ``test_``): `make test` does not run it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import yaml

from tests.integration.proxyproc import ProxyProcess
from tests.integration.serverproc import ServerProcess, wait_listening
from tests.integration.serverproc import spawn as spawn_server
from tests.integration.sidecars import APP, REPO, spawn_sidecar, wait_sidecar_ready

JAEGER_VERSION = "v1.75.0"
"""The version tools/jaeger/go.mod pins."""
IDENTITY = "spiffe://meshpy.local/ns/default/sa/{}"
READY_TIMEOUT_S = 30.0
TRACE_TIMEOUT_S = 30.0
"""How long Jaeger may take to show the four spans (the sidecars export every second)."""
STOP_TIMEOUT_S = 15.0
_JAEGER_READY = "Everything is ready"

Span = dict[str, Any]
T = TypeVar("T")


class SetupError(Exception):
    """The run could not start: a process did not come up."""


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def without_otel(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the OpenTelemetry exporter variables."""
    return {k: v for k, v in env.items() if not k.startswith("OTEL_")}


def jaeger_config(otlp_http: int, query_http: int, query_grpc: int) -> dict[str, Any]:
    """Jaeger all-in-one, as its built-in config has it but reduced to what this run uses:
    the OTLP/HTTP receiver, an in-memory store, the query API, all on 127.0.0.1; no
    metrics endpoint, and the query service does not trace itself."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 10000}}}},
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "enable_tracing": False,
                "http": {"endpoint": f"127.0.0.1:{query_http}"},
                "grpc": {"endpoint": f"127.0.0.1:{query_grpc}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp_http}"}}}},
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }


@dataclass
class Jaeger:
    """One Jaeger process this run started; ``stop()`` ends it by its PID."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    otlp_http: int
    query_http: int

    @property
    def otlp_endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        return f"http://127.0.0.1:{self.otlp_http}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_http}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to this PID, then SIGKILL if it has not exited in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_jaeger(exe: Path, work: Path) -> Jaeger:
    """Start Jaeger with a config of its own in ``work``; wait until it says it is ready."""
    otlp_http, query_http, query_grpc = free_port(), free_port(), free_port()
    config = work / "jaeger.yaml"
    config.write_text(yaml.safe_dump(jaeger_config(otlp_http, query_http, query_grpc)))
    log_path = work / "jaeger.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), "--config", f"file:{config}"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
            env=without_otel(dict(os.environ)),
        )
    jaeger = Jaeger(proc, log_path, otlp_http, query_http)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while _JAEGER_READY not in jaeger.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            jaeger.stop()
            tail = "\n".join(jaeger.log().splitlines()[-20:])
            msg = f"Jaeger not ready (exit code {proc.poll()}); its log ends:\n{tail}"
            raise SetupError(msg)
        time.sleep(0.05)
    return jaeger


@dataclass
class Run:
    """What this run started, stopped in reverse order by ``stop()``."""

    work: Path
    jaeger: Jaeger | None = None
    server: ServerProcess | None = None
    sidecars: dict[str, ProxyProcess] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds each step took, in order."""

    def timed(self, what: str, step: Callable[[], T]) -> T:
        """``step()``, its time recorded as ``what``."""
        began = time.monotonic()
        result = step()
        self.timings[what] = time.monotonic() - began
        return result

    def stop(self) -> None:
        # Sidecars drain for a while: SIGTERM to all, then wait for each.
        for sidecar in self.sidecars.values():
            with contextlib.suppress(Exception):
                sidecar.terminate()
        for sidecar in self.sidecars.values():
            with contextlib.suppress(Exception):
                sidecar.stop()
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.stop()
        if self.jaeger is not None:
            with contextlib.suppress(Exception):
                self.jaeger.stop()


def start_mesh(run: Run, otlp_endpoint: str) -> None:
    """A control plane that samples no trace of its own choosing (only the caller's
    decision counts), then payment, cart (with the test app) and loadgen (no app)."""
    server = spawn_server(run.work / "home", env={"MESHPY_TRACE_SAMPLE_PERCENT": "0"})
    run.server = server
    try:
        wait_listening(server)
    except AssertionError as err:
        raise SetupError(str(err)) from None
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint}
    for service, app in (("payment", APP), ("cart", APP), ("loadgen", None)):
        sidecar = spawn_sidecar(run.work, server, service, app=app, env=env)
        run.sidecars[service] = sidecar
        try:
            wait_sidecar_ready(sidecar, timeout=READY_TIMEOUT_S)
        except AssertionError as err:
            raise SetupError(f"sidecar {service}: {err}") from None


def read_trace(jaeger: Jaeger, trace_id: str, spans: int) -> tuple[dict[str, Any] | None, str]:
    """Jaeger's trace once it has ``spans`` spans (or what it had at the deadline), and the
    last answer's status."""
    deadline = time.monotonic() + TRACE_TIMEOUT_S
    last: dict[str, Any] | None = None
    status = ""
    with httpx.Client(base_url=jaeger.query_url, timeout=5, trust_env=False) as client:
        while True:
            try:
                answer = client.get(f"/api/traces/{trace_id}")
                status = f"HTTP {answer.status_code}"
                if answer.status_code == 200:
                    data = answer.json().get("data") or []
                    if data:
                        last = data[0]
                        if len(last.get("spans") or []) >= spans:
                            return last, status
            except httpx.HTTPError as err:
                status = repr(err)
            if time.monotonic() > deadline:
                return last, status
            time.sleep(0.2)


def tags(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Jaeger's ``[{key, type, value}]`` as a dict."""
    return {item["key"]: item["value"] for item in items or []}


def parent(span: Span) -> str | None:
    """The span id of the span's CHILD_OF reference (OTLP's parent), if any."""
    for ref in span.get("references") or []:
        if ref.get("refType") == "CHILD_OF":
            return str(ref["spanID"])
    return None


@dataclass
class Checks:
    """Named checks, printed as they are made."""

    failed: list[str] = field(default_factory=list)
    count: int = 0

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.count += 1
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {name}" + (f": {detail}" if detail and not ok else ""))
        if not ok:
            self.failed.append(name)
        return ok


def describe(trace: dict[str, Any], root_parent: str) -> Iterator[str]:
    """The trace as a tree: service, kind, name, ids, duration, the tags that matter."""
    spans: list[Span] = trace.get("spans") or []
    processes = trace.get("processes") or {}
    by_id = {s["spanID"]: s for s in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        up = parent(span)
        children.setdefault(up if up in by_id else None, []).append(span)
    start = min((s["startTime"] for s in spans), default=0)

    def lines(span: Span, depth: int) -> Iterator[str]:
        t = tags(span.get("tags"))
        service = processes.get(span.get("processID"), {}).get("serviceName", "?")
        up = parent(span)
        up_text = f"{up} (outside the trace)" if up not in by_id else str(up)
        if up == root_parent:
            up_text = f"{up} (the caller's, from traceparent)"
        who = t.get("meshpy.source.identity") or t.get("meshpy.destination.identity") or "-"
        yield (
            f"  {'  ' * depth}{service} {t.get('span.kind', '?')} {span['operationName']!r}"
            f"  span {span['spanID']} parent {up_text}"
            f"  +{(span['startTime'] - start) / 1000:.2f} ms {span['duration'] / 1000:.2f} ms"
            f"  http {t.get('http.response.status_code', '?')} mtls {t.get('meshpy.mtls', '?')}"
            f"  {who}"
            + "".join(
                f"  {key}={t[key]}"
                for key in ("otel.status_code", "error", "meshpy.error")
                if key in t
            )
        )
        for child in sorted(children.get(span["spanID"], []), key=lambda s: s["startTime"]):
            yield from lines(child, depth + 1)

    for root in sorted(children.get(None, []), key=lambda s: s["startTime"]):
        yield from lines(root, 0)


def check_trace(
    checks: Checks, trace: dict[str, Any] | None, trace_id: str, root_parent: str, request_id: str
) -> None:
    """The tree of test_tracing_mesh.py, as Jaeger shows it."""
    if not checks.check("Jaeger returned the trace", trace is not None):
        return
    assert trace is not None
    spans: list[Span] = trace.get("spans") or []
    processes = trace.get("processes") or {}
    checks.check("its trace id is the one sent", trace.get("traceID") == trace_id)
    checks.check("4 spans", len(spans) == 4, f"{len(spans)} spans")

    def service(span: Span) -> str:
        return str(processes.get(span.get("processID"), {}).get("serviceName"))

    found = sorted((service(s), tags(s.get("tags")).get("span.kind")) for s in spans)
    expected = sorted(
        [("loadgen", "client"), ("cart", "server"), ("cart", "client"), ("payment", "server")]
    )
    if not checks.check(
        "services and kinds: loadgen client, cart server, cart client, payment server",
        found == expected,
        f"got {found}",
    ):
        return
    one = {(service(s), tags(s.get("tags")).get("span.kind")): s for s in spans}
    out_of_loadgen = one["loadgen", "client"]
    into_cart = one["cart", "server"]
    out_of_cart = one["cart", "client"]
    into_payment = one["payment", "server"]
    links = [
        ("loadgen client is the child of the caller's span", out_of_loadgen, root_parent),
        ("cart server is the child of loadgen client", into_cart, out_of_loadgen["spanID"]),
        ("cart client is the child of cart server", out_of_cart, into_cart["spanID"]),
        ("payment server is the child of cart client", into_payment, out_of_cart["spanID"]),
    ]
    for name, span, want in links:
        checks.check(name, parent(span) == want, f"parent {parent(span)}, expected {want}")
    identities = [
        ("loadgen client: destination is cart", out_of_loadgen, "destination", "cart"),
        ("cart server: source is loadgen", into_cart, "source", "loadgen"),
        ("cart client: destination is payment", out_of_cart, "destination", "payment"),
        ("payment server: source is cart", into_payment, "source", "cart"),
    ]
    for name, span, side, who in identities:
        got = tags(span.get("tags")).get(f"meshpy.{side}.identity")
        checks.check(f"{name} (meshpy.{side}.identity)", got == IDENTITY.format(who), f"{got}")
    for span in spans:
        t = tags(span.get("tags"))
        label = f"{service(span)} {t.get('span.kind')}"
        process_tags = tags(processes.get(span.get("processID"), {}).get("tags"))
        checks.check(
            f"{label}: meshpy.mtls true, status 200, request id {request_id}, "
            "service.namespace default",
            t.get("meshpy.mtls") is True
            and t.get("http.response.status_code") == 200
            and t.get("meshpy.request_id") == request_id
            and process_tags.get("service.namespace") == "default",
            f"tags {t}, process tags {process_tags}",
        )
    checks.check(
        "loadgen client's span holds payment server's, in time",
        out_of_loadgen["startTime"] <= into_payment["startTime"]
        and out_of_loadgen["startTime"] + out_of_loadgen["duration"]
        >= into_payment["startTime"] + into_payment["duration"],
    )


def jaeger_module_version(exe: Path) -> str:
    """The Jaeger module version built into ``exe``, as `go version -m` reads it."""
    go = shutil.which(os.environ.get("GO", "go"))
    if go is None:
        return "unknown (no go to read the build info)"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            [go, "version", "-m", str(exe)], check=False, capture_output=True, text=True, timeout=30
        )
        for line in done.stdout.splitlines():
            parts = line.split()
            if parts[:2] == ["mod", "github.com/jaegertracing/jaeger"] and len(parts) > 2:
                return parts[2]
    return "unknown"


def interop(run: Run, exe: Path) -> int:
    version = jaeger_module_version(exe)
    print(f"Jaeger {version} ({exe})")
    if version != JAEGER_VERSION and not version.startswith("unknown"):
        print(f"  not the version tools/jaeger/go.mod pins ({JAEGER_VERSION}): run `make jaeger`")
    jaeger = run.jaeger = run.timed("jaeger start", lambda: start_jaeger(exe, run.work))
    print(f"  OTLP/HTTP receiver {jaeger.otlp_endpoint}, query API {jaeger.query_url}")
    run.timed("mesh start", lambda: start_mesh(run, jaeger.otlp_endpoint))
    print("meshpy: control plane and sidecars loadgen, cart, payment ready")

    loadgen = run.sidecars["loadgen"].addresses["outbound"]
    checks = Checks()
    with httpx.Client(base_url=f"http://{loadgen}", timeout=15, trust_env=False) as client:
        one_request(run, jaeger, client, checks)
        one_failure(run, jaeger, client, checks)
    print(
        "timings: "
        + ", ".join(f"{what} {seconds * 1000:.0f} ms" for what, seconds in run.timings.items())
    )
    if checks.failed:
        print(f"FAIL: {len(checks.failed)} of {checks.count} checks failed with Jaeger {version}")
        return 1
    print(f"PASS: {checks.count} checks, Jaeger {version} shows the mesh's traces as meshpy does")
    return 0


def send(
    run: Run, client: httpx.Client, path: str, what: str
) -> tuple[httpx.Response, str, str, str]:
    """GET ``path`` from loadgen to cart with a new sampled trace; the answer, trace id,
    the caller's span id (the first sidecar's parent) and the request id."""
    trace_id, root_parent = secrets.token_hex(16), secrets.token_hex(8)
    request_id = f"interop-{secrets.token_hex(4)}"
    headers = {
        "host": "cart",
        "traceparent": f"00-{trace_id}-{root_parent}-01",
        "x-request-id": request_id,
    }
    print(f"\nrequest: loadgen → cart {path}, traceparent {headers['traceparent']}")
    answer = run.timed(what, lambda: client.get(path, headers=headers))
    print(f"  answer {answer.status_code}: {answer.text[:200]}")
    return answer, trace_id, root_parent, request_id


def fetch_trace(
    run: Run, jaeger: Jaeger, trace_id: str, spans: int, what: str
) -> dict[str, Any] | None:
    """The trace from Jaeger once it has ``spans`` spans, saved in the working folder."""
    trace, status = run.timed(what, lambda: read_trace(jaeger, trace_id, spans))
    print(f"Jaeger GET /api/traces/{trace_id}: {status}")
    (run.work / f"jaeger-trace-{trace_id}.json").write_text(json.dumps(trace, indent=2))
    return trace


def show(trace: dict[str, Any] | None, root_parent: str) -> None:
    if trace is None:
        return
    print("the trace in Jaeger:")
    for line in describe(trace, root_parent):
        print(line)
    for span in trace.get("spans") or []:
        if span.get("warnings"):
            print(f"  Jaeger's warnings on span {span['spanID']}: {span['warnings']}")


def one_request(run: Run, jaeger: Jaeger, client: httpx.Client, checks: Checks) -> None:
    """loadgen → cart → payment: the four spans of test_tracing_mesh.py."""
    answer, trace_id, root_parent, request_id = send(run, client, "/call/payment/charge", "request")
    if not checks.check("the request is answered 200", answer.status_code == 200):
        return
    trace = fetch_trace(run, jaeger, trace_id, 4, "its 4 spans in Jaeger")
    check_trace(checks, trace, trace_id, root_parent, request_id)
    show(trace, root_parent)


def one_failure(run: Run, jaeger: Jaeger, client: httpx.Client, checks: Checks) -> None:
    """loadgen → cart → a service that does not exist: cart's sidecar fails the call
    (502, no_route), and its client span carries an error status, which Jaeger shows
    as its ``error`` and ``otel.status_code`` tags."""
    answer, trace_id, root_parent, _ = send(run, client, "/call/nowhere/x", "failing request")
    if not checks.check("the failing request is answered 502", answer.status_code == 502):
        return
    trace = fetch_trace(run, jaeger, trace_id, 3, "its 3 spans in Jaeger")
    spans: list[Span] = (trace or {}).get("spans") or []
    processes = (trace or {}).get("processes") or {}
    out_of_cart = [
        s
        for s in spans
        if processes.get(s.get("processID"), {}).get("serviceName") == "cart"
        and tags(s.get("tags")).get("span.kind") == "client"
    ]
    got = tags(out_of_cart[0].get("tags")) if out_of_cart else {}
    checks.check(
        "the failed trace has cart's client span", bool(out_of_cart), f"{len(spans)} spans"
    )
    checks.check(
        "cart client: error status (error true, otel.status_code ERROR), meshpy.error no_route",
        got.get("error") is True
        and got.get("otel.status_code") == "ERROR"
        and got.get("meshpy.error") == "no_route",
        f"tags {got}",
    )
    show(trace, root_parent)


def _exit_on_sigterm(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jaeger",
        type=Path,
        default=REPO / ".tools" / "bin" / "jaeger",
        help="the jaeger binary (`make jaeger` builds it into .tools/bin)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the working folder (logs, configs) after a PASS"
    )
    options = parser.parse_args()
    if not options.jaeger.is_file():
        print(f"FAIL: no Jaeger at {options.jaeger}: run `make jaeger` (needs Go)")
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    run = Run(Path(tempfile.mkdtemp(prefix="meshpy-interop-tracing-")))
    rc = 2
    try:
        rc = interop(run, options.jaeger.resolve())
    except SetupError as err:
        print(f"FAIL: could not set up the run: {err}")
    finally:
        run.stop()
        if rc == 0 and not options.keep:
            shutil.rmtree(run.work, ignore_errors=True)
        else:
            print(f"logs and configs: {run.work}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
