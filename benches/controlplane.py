"""Control-plane benchmark: how fast a route change reaches every watching sidecar.

Starts a real ``meshpy server``, registers ``--instances`` healthy instances spread over
``--services`` services, opens ``--watchers`` config long-polls (as sidecars do, with
If-None-Match), then applies ``--rounds`` route changes one by one and measures, for each,
the time from the change being sent to each watcher holding the new config. Also reports
how long reading the registry and building one snapshot takes, and the server's memory.

    python benches/controlplane.py                      # SQLite, 10,000 instances, 100 watchers
    python benches/controlplane.py --db postgresql://…  # the same on PostgreSQL
    python benches/controlplane.py --write-readme       # also update benches/README.md

Uses the project's .venv (httpx, the meshpy package). Stops only the server it started.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.net import free_port
from harness.results import write_readme

START, END = "<!-- controlplane:start -->", "<!-- controlplane:end -->"


def start_server(home: Path, db: str | None) -> tuple[subprocess.Popen[bytes], str, str]:
    """A ``meshpy server`` with leases long enough to outlive the run."""
    port = free_port()
    env = {
        **os.environ,
        "MESHPY_HOME": str(home),
        "MESHPY_LEASE_TTL": "3600",
        "MESHPY_LOG": "warning",
    }
    argv = [sys.executable, "-m", "meshpy", "server", "--listen", f"127.0.0.1:{port}"]
    if db:
        subprocess.run([sys.executable, "-m", "meshpy", "db", "upgrade", "--db", db], check=True)
        argv += ["--db", db]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(
                f"meshpy server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        time.sleep(0.1)
    token = (home / "admin-token").read_text().strip()
    return proc, url, token


RETRIED = {"503": 0}


async def call(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    """One request, retried on 503 with a backoff as a sidecar would; counts the retries."""
    for attempt in range(10):
        response = await client.request(method, path, json=body)
        if response.status_code != 503:
            response.raise_for_status()
            return response
        RETRIED["503"] += 1
        await asyncio.sleep(0.05 * 2**attempt)
    response.raise_for_status()
    return response


async def register_all(client: httpx.AsyncClient, instances: int, services: int) -> list[str]:
    """Register and mark healthy ``instances`` instances; returns their ids."""
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> str:
        service = f"svc{i % services}"
        base = f"/api/v1/namespaces/default/services/{service}/instances"
        body = {
            "address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "inbound_port": 15006,
            "app_port": 8080,
            "version": "v1" if i % 10 else "v2",
        }
        async with sem:
            created = await call(client, "POST", base, body)
            instance: str = created.json()["id"]
            await call(client, "PUT", f"{base}/{instance}/lease", {"health": "passing"})
        return instance

    return list(await asyncio.gather(*(one(i) for i in range(instances))))


def route(weight: int) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "svc0-canary", "namespace": "default"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "svc0"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "svc0-v1", "weight": 100 - weight},
                        {"name": "svc0-v2", "weight": weight},
                    ]
                }
            ],
        },
    }


class Watcher:
    """One sidecar's long-poll loop on its own keep-alive connection; records arrivals.

    Plain asyncio streams rather than httpx: with a hundred long-polls in one process the
    client's connection pool, not the server, would set the pace.
    """

    def __init__(self, url: str, token: str, instance: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = token
        self.instance = instance
        self.etag: str | None = None
        self.arrivals: list[tuple[float, str]] = []
        self.changed = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        path = f"/api/v1/proxies/{self.instance}/config?wait=30s"
        try:
            while True:
                match = f"If-None-Match: {self.etag}\r\n" if self.etag else ""
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                    f"Authorization: Bearer {self.token}\r\nAccept-Encoding: gzip\r\n"
                    f"{match}\r\n".encode()
                )
                await writer.drain()
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                status = int(head.split(" ", 2)[1])
                fields = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:])
                    if k
                }
                body = await reader.readexactly(int(fields.get("content-length", "0")))
                if status == 200:
                    if fields.get("content-encoding") == "gzip":
                        body = gzip.decompress(body)
                    self.etag = fields["etag"]
                    self.arrivals.append((time.perf_counter(), self.etag))
                    self.changed.set()
                elif status != 304:
                    raise RuntimeError(f"config: {status} {body[:200]!r}")
        finally:
            writer.close()


async def measure(url: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(
        max_connections=args.watchers + 40, max_keepalive_connections=args.watchers + 40
    )
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=120, limits=limits
    ) as client:
        started = time.perf_counter()
        ids = await register_all(client, args.instances, args.services)
        registration_s = time.perf_counter() - started
        await client.put("/api/v1/namespaces/default/httproutes/svc0-canary", json=route(10))
        watchers = [
            Watcher(url, token, ids[i * len(ids) // args.watchers]) for i in range(args.watchers)
        ]
        tasks = [asyncio.create_task(w.run()) for w in watchers]
        await asyncio.wait_for(asyncio.gather(*(w.changed.wait() for w in watchers)), 120)
        delays: list[float] = []
        round_max: list[float] = []
        for r in range(args.rounds):
            await asyncio.sleep(args.pause)
            for w in watchers:
                w.changed.clear()
            sent = time.perf_counter()
            response = await client.put(
                "/api/v1/namespaces/default/httproutes/svc0-canary", json=route(11 + r)
            )
            response.raise_for_status()
            await asyncio.wait_for(asyncio.gather(*(w.changed.wait() for w in watchers)), 60)
            these = [w.arrivals[-1][0] - sent for w in watchers]
            delays += these
            round_max.append(max(these))
        for task in tasks:
            task.cancel()
        metrics = (await client.get("/metrics")).text
    load = re.search(r"^meshpy_config_mesh_load_seconds ([0-9.e+-]+)$", metrics, re.M)
    return {
        "registration_s": registration_s,
        "delays": delays,
        "round_max": round_max,
        "mesh_load_s": float(load.group(1)) if load else None,
    }


def build_time(home: Path, db: str | None) -> dict[str, float]:
    """In-process: read the registry once and build one sidecar's snapshot."""
    from meshpy.registry.db import Database
    from meshpy.registry.meshstate import load_mesh_state
    from meshpy.settings import Settings
    from meshpy.snapshot import build_snapshot

    settings = Settings(home=home, db_url=db) if db else Settings(home=home)
    database = Database(settings.database_url)
    try:
        started = time.perf_counter()
        with database.transaction(write=False) as session:
            mesh = load_mesh_state(session)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        build_snapshot(mesh, mesh.instances[0].id)
        built = time.perf_counter() - started
    finally:
        database.dispose()
    return {"load_s": loaded, "build_s": built}


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(result: dict[str, Any], args: argparse.Namespace, db: str) -> str:
    delays = result["delays"]
    rows = [
        ("database", db),
        (
            "instances / services / watchers",
            f"{args.instances:,} / {args.services} / {args.watchers}",
        ),
        ("registration (register + first report)", f"{result['registration_s']:.1f} s"),
        ("503s retried during registration", f"{RETRIED['503']}"),
        ("route change → all watchers, p50", f"{statistics.median(delays) * 1000:.0f} ms"),
        ("route change → all watchers, p99", f"{percentile(delays, 0.99) * 1000:.0f} ms"),
        ("slowest round (last watcher)", f"{max(result['round_max']) * 1000:.0f} ms"),
        ("registry read per revision (server)", f"{(result['mesh_load_s'] or 0) * 1000:.0f} ms"),
        ("registry read (in process)", f"{result['load_s'] * 1000:.0f} ms"),
        ("one full snapshot build (in process)", f"{result['build_s'] * 1000:.0f} ms"),
        ("server RSS after the run", f"{result['rss_mib']:.0f} MiB"),
        ("goal: p99 ≤ 1 s", "met" if percentile(delays, 0.99) <= 1.0 else "NOT met"),
    ]
    lines = ["| measure | value |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines) + "\n"


def readme_section(text: str) -> str:
    """The README's control-plane results: when and how it ran, then the table."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"Run on {stamp}, {args_line()}.\n\n{text}".rstrip("\n")


def args_line() -> str:
    return f"{os.cpu_count()} CPUs, `{' '.join(sys.argv[1:]) or 'defaults'}`"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between changes")
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshpy-cp-bench-") as tmp:
        home = Path(tmp)
        proc, url, token = start_server(home, args.db)
        try:
            result = asyncio.run(measure(url, token, args))
            result["rss_mib"] = rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        result.update(build_time(home, args.db))
    text = report(result, args, "PostgreSQL" if args.db else "SQLite")
    print(text, end="")
    if args.write_readme:
        write_readme(readme_section(text), START, END, "Control plane: config propagation")
    return 0 if percentile(result["delays"], 0.99) <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
