"""``meshpy up``: a control plane and every instance of a mesh file, watched, then stopped.

Start: ``meshpy server`` as a child (data in the home directory), a join token per
service, the resources applied, then the instances wave by wave (a service starts once
every instance of the services in its ``depends_on`` is healthy): each is ``meshpy run``
with its own state directory, its version, ``MESHPY_TOKEN`` and ``MESHPY_SERVER``, and
``--events <home>/events/<name>.jsonl``: its admin address, instance id, readiness and app
exits come from those JSON lines (``meshpy.sidecar.events``), never from its log.

Watch: about once a second, the registry's view of every instance (its state) and each
sidecar's /metrics (the traffic into its instance), shown as a table.

Rollouts (the mesh file's ``rollouts``): once every instance is healthy, each runs on a
thread of its own (``meshpy.up.rollouts``), through ``meshpy.rules.Client`` with the
admin token, narrated line by line; a stop interrupts them (each rolls back) before
anything else stops, and their outcomes end the summary.

Stop (SIGTERM, SIGINT, SIGHUP, the duration's end, or a failure): the sidecars first, with
SIGTERM (each deregisters, drains and stops its app), then the control plane; whatever
still runs after a deadline gets SIGKILL, and every process seen in the tree is checked
gone. Logs: ``<home>/logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from meshpy.errors import MeshpyError
from meshpy.sidecar.events import EventReader
from meshpy.up.display import PlainView, Row, View, fmt_pct
from meshpy.up.meshfile import MeshFile, Replica
from meshpy.up.procs import Child, Processes, become_subreaper
from meshpy.up.rollouts import Connection, Job
from meshpy.up.stats import Rates, Scrape, parse_metrics, rates

if TYPE_CHECKING:
    import httpx

__all__ = ["EXIT_FAILED", "EXIT_OK", "Instance", "Options", "Up"]

EXIT_OK = 0
EXIT_FAILED = 1
NAMESPACE = "default"
SERVER_START_S = 30.0
SIDECAR_STOP_S = 30.0
"""SIGTERM to SIGKILL for sidecars: their drain (10 s) and their app's stop grace (10 s)."""
SERVER_STOP_S = 15.0
ROLLOUT_STOP_S = 15.0
"""How long a stop waits for the rollouts to roll back (each request times out sooner)."""
ROLLOUT_REQUEST_S = 5.0
WINDOW_S = 10.0
"""Rates are computed over about this many seconds."""
TOKEN_TTL = "720h"
RENEW_EVERY = "1s"
"""How often the embedded control plane has instances report (unless MESHPY_RENEW_EVERY
says): a local mesh is small, and its table then follows health changes within a second."""

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""SIGHUP too: a closed terminal stops the mesh in order as well."""
_LISTENING = re.compile(r"meshpy server: listening on (http://\S+)")


@dataclass(frozen=True)
class Options:
    """How ``meshpy up`` runs a mesh file."""

    home: Path
    listen: str = "127.0.0.1:15010"
    base_dir: Path = field(default_factory=Path.cwd)
    """Where the instances run (relative paths in their commands start here)."""
    ready_timeout: float = 60.0
    duration: float | None = None
    interval: float = 1.0


class StartError(MeshpyError):
    """Something did not start; ``child`` is the process whose log tells why, if any."""

    def __init__(self, message: str, child: Child | None = None) -> None:
        super().__init__(message)
        self.child = child


@dataclass
class Instance:
    """One replica: its sidecar process and what is known of it."""

    replica: Replica
    child: Child
    events: EventReader
    instance_id: str | None = None
    admin: str | None = None
    ready: bool = False
    state: str = "starting"
    restarts: int = 0
    exited: int | None = None
    """The sidecar's exit code, once it exited."""
    app_done: int | None = None
    """The app's exit code, once it exited for good (its restart policy says so)."""
    scrapes: deque[Scrape] = field(default_factory=lambda: deque(maxlen=64))
    identity: dict[str, Any] | None = None
    inbound_tls: str | None = None

    def read_events(self) -> None:
        """Learn from the events the sidecar reported since the last call."""
        for event in self.events.new_events():
            match event:
                case {"event": "addresses", "addresses": {"admin": str(admin)}}:
                    self.admin = admin
                case {"event": "registered", "instance": str(instance)}:
                    self.instance_id = instance
                case {"event": "ready"}:
                    self.ready = True
                case {"event": "not_ready"}:
                    self.ready = False
                case {"event": "app_exited", "code": int(code), "restarting": True}:
                    self.restarts += 1
                case {"event": "app_exited", "code": int(code), "restarting": False}:
                    self.app_done = code

    def window(self) -> Rates:
        """Rates over the last ``WINDOW_S`` seconds of scrapes."""
        if len(self.scrapes) < 2:
            return Rates()
        newest = self.scrapes[-1]
        oldest = next(s for s in self.scrapes if newest.at - s.at <= WINDOW_S)
        if oldest is newest:
            oldest = self.scrapes[-2]
        return rates(oldest, newest)


class Up:
    """Runs one mesh file: ``run()`` returns the exit code."""

    def __init__(
        self,
        mesh: MeshFile,
        resources: Sequence[Path],
        options: Options,
        view: View | None = None,
        *,
        title: str | None = None,
    ) -> None:
        self.mesh = mesh
        self.resources = list(resources)
        self.options = options
        self.home = options.home.resolve()
        self.view: View = view or PlainView()
        self.title = title or mesh.name or options.base_dir.resolve().name or "mesh"
        self.procs = Processes(self.home / "logs")
        self.server: Child | None = None
        self.url = ""
        self.instances: list[Instance] = []
        self.tokens: dict[str, tuple[str, str]] = {}
        """service -> (token id, token)"""
        self.stopping = threading.Event()
        self.hurry = threading.Event()
        self.ending = threading.Event()
        """Set as the watch ends, however it does: the rollouts stop (and roll back)."""
        self.rollouts: list[Job] = []
        self._admin_token = ""
        self._view_lock = threading.Lock()
        self.started_at = time.monotonic()
        self.failed = False
        self._api: httpx.Client | None = None
        self._scraper: httpx.Client | None = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="meshpy-up")

    # --- the whole run -----------------------------------------------------------------

    def run(self) -> int:
        """Start, watch until stopped, stop; print a summary. Returns the exit code."""
        lock = self._lock_home()
        if lock is None:
            return EXIT_FAILED
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        become_subreaper()
        started = False
        try:
            try:
                self._start()
                started = not self.stopping.is_set()
            except StartError as exc:
                self.failed = True
                self._error(str(exc))
                if exc.child is not None:
                    self._error(f"last lines of {exc.child.log_path}:")
                    for line in exc.child.log_tail().splitlines():
                        self._error(f"  {line}")
            if started:
                self._start_rollouts()
                self._watch()
                self._collect()
        finally:
            self._stop_rollouts()
            with contextlib.suppress(OSError):
                self.view.close()
            clean = self._stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._pool.shutdown(wait=False, cancel_futures=True)
            for client in (self._api, self._scraper):
                if client is not None:
                    client.close()
            lock.close()
        if started:
            self.summary(print_line=self._print)
        return EXIT_OK if clean and not self.failed else EXIT_FAILED

    def _lock_home(self) -> IO[str] | None:
        """Hold ``<home>/up.lock`` while running: one ``meshpy up`` per home directory."""
        import fcntl

        self.home.mkdir(parents=True, exist_ok=True)
        lock = (self.home / "up.lock").open("a", encoding="utf-8")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            self._error(f"another meshpy up is running with {self.home} (MESHPY_HOME)")
            return None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        return lock

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping.is_set():
            self.hurry.set()  # a second Ctrl-C: do not wait for the drains
        self.stopping.set()
        self.ending.set()

    def _print(self, text: str) -> None:
        # A closed terminal must not stop the stopping; rollouts print from their threads.
        with self._view_lock, contextlib.suppress(OSError):
            self.view.line(text)

    def _say(self, text: str) -> None:
        self._print(f"meshpy up: {text}")

    def _error(self, text: str) -> None:
        with contextlib.suppress(OSError):
            self.view.close()
            sys.stderr.write(f"meshpy up: {text}\n")
            sys.stderr.flush()

    # --- start -------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("MESHPY_TOKEN", "MESHPY_SERVER")}
        # `python` in a command is the interpreter meshpy runs with (a virtualenv's, say).
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
        return env

    def _start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._start_server()
        if self.stopping.is_set():
            return
        self._create_tokens()
        self._apply_resources()
        for wave in self._waves():
            if self.stopping.is_set():
                return
            self._say("starting " + ", ".join(i.replica.name for i in wave))
            self._wait_healthy(wave)
        if not self.stopping.is_set():
            took = time.monotonic() - self.started_at
            services = len(self.mesh.services)
            self._say(
                f"ready: {len(self.instances)} instances of {services} services in {took:.1f}s "
                "(Ctrl-C stops everything)"
            )

    def _start_server(self) -> None:
        env = self._environment()
        env["MESHPY_HOME"] = str(self.home)
        env.setdefault("MESHPY_RENEW_EVERY", RENEW_EVERY)
        argv = [sys.executable, "-m", "meshpy", "server", "--listen", self.options.listen]
        argv += ["--data-dir", str(self.home)]
        self.server = server = self.procs.spawn("server", argv, env=env, cwd=self.home)
        deadline = time.monotonic() + SERVER_START_S
        while not self.url:
            for line in server.new_lines():
                if match := _LISTENING.search(line):
                    self.url = match.group(1)
            if self.url:
                break
            if not server.running():
                msg = f"the control plane exited with code {server.proc.returncode}"
                raise StartError(msg, server)
            if time.monotonic() > deadline:
                raise StartError(f"the control plane did not start in {SERVER_START_S:g}s", server)
            if self.stopping.wait(0.05):
                return
        self._wait_server_ready(deadline)
        token_file = self.home / "admin-token"
        self._say(f"{self.title}: control plane {self.url}, data and logs in {self.home}")
        self._say(
            f"admin token in {token_file}: with MESHPY_HOME={self.home} (the default from "
            f"{self.home.parent}), `meshpy service list`, `meshpy get httproutes` and "
            "`meshpy proxy status` work from another terminal"
        )

    def _wait_server_ready(self, deadline: float) -> None:
        import httpx

        self._admin_token = token = (self.home / "admin-token").read_text(encoding="utf-8").strip()
        self._api = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
            trust_env=False,
        )
        self._scraper = httpx.Client(timeout=2.0, trust_env=False)
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if self._api.get("/readyz").status_code == 200:
                    return
            assert self.server is not None
            if not self.server.running() or time.monotonic() > deadline:
                raise StartError("the control plane is not ready", self.server)
            if self.stopping.wait(0.1):
                return

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        assert self._api is not None
        try:
            answer = self._api.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StartError(f"{method} {path}: {exc}", self.server) from None
        if answer.status_code >= 400:
            raise StartError(f"{method} {path}: {_problem(answer)}")
        return answer.json() if answer.content else None

    def _create_tokens(self) -> None:
        for service in self.mesh.services:
            created = self._request(
                "POST",
                "/api/v1/tokens",
                json={"service": service, "namespace": NAMESPACE, "ttl": TOKEN_TTL},
            )
            self.tokens[service] = (str(created["id"]), str(created["token"]))

    def _apply_resources(self) -> None:
        for path in self.resources:
            text = path.read_text(encoding="utf-8")
            result = self._request(
                "POST",
                "/api/v1/apply",
                params={"namespace": NAMESPACE},
                content=text.encode(),
                headers={"Content-Type": "application/yaml"},
            )
            done = ", ".join(
                f"{item['kind'].lower()}/{item['name']} {item['result']}"
                for item in result["items"]
            )
            self._say(f"applied {path.name}: {done}")

    def _waves(self) -> Iterator[list[Instance]]:
        replicas = list(self.mesh.replicas())
        for wave in sorted({r.wave for r in replicas}):
            started = [self._spawn_replica(r) for r in replicas if r.wave == wave]
            if started:
                yield started

    def _spawn_replica(self, replica: Replica) -> Instance:
        argv = [sys.executable, "-m", "meshpy", "run", "--service", replica.service]
        if replica.version:
            argv += ["--version", replica.version]
        argv += ["--health", replica.health, "--restart", replica.restart]
        events = self.home / "events" / f"{replica.name}.jsonl"
        events.parent.mkdir(parents=True, exist_ok=True)
        events.unlink(missing_ok=True)  # a file of an earlier run says nothing of this one
        argv += ["--state-dir", str(self.home / "state" / replica.name), "--events", str(events)]
        argv += ["--server", self.url, "--", *replica.command]
        env = self._environment()
        env.update(replica.env)
        env["MESHPY_TOKEN"] = self.tokens[replica.service][1]
        env["MESHPY_SERVER"] = self.url
        try:
            child = self.procs.spawn(replica.name, argv, env=env, cwd=self.options.base_dir)
        except OSError as exc:
            raise StartError(f"cannot start {replica.name}: {exc}") from None
        instance = Instance(replica, child, EventReader(events))
        self.instances.append(instance)
        return instance

    def _wait_healthy(self, wave: list[Instance]) -> None:
        deadline = time.monotonic() + self.options.ready_timeout
        while not self.stopping.is_set():
            for inst in wave:
                inst.read_events()
                # The app's own exit first: its sidecar then leaves too, with the same code,
                # and the app's is the more useful message.
                if inst.app_done is not None:
                    msg = (
                        f"{inst.replica.name}: its app exited with code {inst.app_done} "
                        f"(restart: {inst.replica.restart})"
                    )
                    raise StartError(msg, inst.child)
                if not inst.child.running():
                    code = inst.child.proc.returncode
                    raise StartError(f"{inst.replica.name} exited with code {code}", inst.child)
            self._check_server()
            self._refresh_states(wave)
            if all(i.state == "healthy" for i in wave):
                return
            if time.monotonic() > deadline:
                late = next(i for i in wave if i.state != "healthy")
                msg = (
                    f"{late.replica.name} is not healthy after {self.options.ready_timeout:g}s "
                    f"(state {late.state})"
                )
                raise StartError(msg, late.child)
            self.procs.look()
            self.stopping.wait(0.2)

    def _check_server(self) -> None:
        server = self.server
        if server is not None and not server.running():
            msg = f"the control plane exited with code {server.proc.returncode}"
            raise StartError(msg, server)

    # --- watch -------------------------------------------------------------------------

    def _watch(self) -> None:
        watch_start = time.monotonic()
        next_tick = watch_start
        while not self.stopping.is_set():
            try:
                self._check_server()
            except StartError as exc:
                self.failed = True
                self._error(str(exc))
                return
            for inst in self.instances:
                inst.read_events()
                code = inst.child.proc.poll()
                if code is not None and inst.exited is None:
                    inst.exited = code
                    inst.state = f"exited {code}"
                    self.failed = self.failed or code != 0
                    self._say(
                        f"{inst.replica.name} exited with code {code}; "
                        f"its log: {inst.child.log_path}"
                    )
            self.procs.look()
            self.procs.reap()
            self._collect()
            with self._view_lock, contextlib.suppress(OSError):
                self.view.show(self._title_line(), self.rows(), self._footer())
            duration = self.options.duration
            if duration is not None and time.monotonic() - watch_start >= duration:
                return
            next_tick += self.options.interval
            self.stopping.wait(max(0.0, next_tick - time.monotonic()))

    def _title_line(self) -> str:
        elapsed = time.monotonic() - self.started_at
        return f"meshpy up: {self.title} — control plane {self.url} — {elapsed:.0f}s"

    def _footer(self) -> str:
        by_version: dict[str, dict[str | None, float]] = {}
        for inst in self.instances:
            shares = by_version.setdefault(inst.replica.service, {})
            version = inst.replica.version
            shares[version] = shares.get(version, 0.0) + inst.window().rps
        parts = []
        for service, versions in by_version.items():
            total = sum(versions.values())
            if len(versions) > 1 and total > 0:
                split = " / ".join(f"{v} {fmt_pct(rps / total)}" for v, rps in versions.items())
                parts.append(f"{service}: {split}")
        parts += [f"rollout {job.name}: {job.status}" for job in self.rollouts]
        return "; ".join(parts)

    def rows(self) -> list[Row]:
        """The table's rows, by service (in the mesh file's order), version, replica."""
        order = {name: i for i, name in enumerate(self.mesh.services)}
        totals: dict[str, float] = {}
        windows = {id(i): i.window() for i in self.instances}
        for inst in self.instances:
            service = inst.replica.service
            totals[service] = totals.get(service, 0.0) + windows[id(inst)].rps
        ordered = sorted(
            self.instances,
            key=lambda i: (order[i.replica.service], i.replica.version or "", i.replica.name),
        )
        rows = []
        for inst in ordered:
            window = windows[id(inst)]
            total = totals[inst.replica.service]
            rows.append(
                Row(
                    service=inst.replica.service,
                    version=inst.replica.version,
                    name=inst.replica.name,
                    instance=inst.instance_id,
                    state=inst.state,
                    rates=window,
                    share=window.rps / total if total > 0 else None,
                    restarts=inst.restarts,
                )
            )
        return rows

    # --- rollouts ----------------------------------------------------------------------

    def _connect(self) -> Connection:
        from meshpy.rules import Client

        return Client(self.url, self._admin_token, namespace=NAMESPACE, timeout=ROLLOUT_REQUEST_S)

    def _start_rollouts(self) -> None:
        plans = self.mesh.plans(NAMESPACE)
        for spec, plan in zip(self.mesh.rollouts, plans, strict=True):
            job = Job(plan, spec.after, self._connect, self.ending, self._say)
            self.rollouts.append(job)
            job.start()

    def _stop_rollouts(self) -> None:
        """Interrupt the rollouts (each rolls back) while the control plane still runs."""
        self.ending.set()
        deadline = time.monotonic() + ROLLOUT_STOP_S
        for job in self.rollouts:
            if not job.join(max(0.0, deadline - time.monotonic())):
                self._error(f"rollout {job.name} did not stop in {ROLLOUT_STOP_S:g}s")

    # --- what the registry and the sidecars say ----------------------------------------

    def _collect(self) -> None:
        """Registry states and a metrics scrape of every sidecar, in parallel."""
        jobs: list[Callable[[], None]] = [partial(self._refresh_states, self.instances)]
        jobs += [partial(self._scrape, inst) for inst in self.instances]
        for future in [self._pool.submit(job) for job in jobs]:
            with contextlib.suppress(Exception):
                future.result(timeout=5)

    def _refresh_states(self, instances: Sequence[Instance]) -> None:
        import httpx

        if self._api is None:
            return
        by_id: dict[str, str] = {}
        for service in sorted({i.replica.service for i in instances}):
            try:
                answer = self._api.get(f"/api/v1/namespaces/{NAMESPACE}/services/{service}")
            except httpx.HTTPError:
                return  # keep the states last seen
            if answer.status_code == 200:
                for endpoint in answer.json().get("endpoints", []):
                    by_id[str(endpoint["id"])] = str(endpoint["state"])
        for inst in instances:
            if inst.exited is not None:
                continue
            if inst.instance_id is None:
                inst.state = "starting"
            else:
                inst.state = by_id.get(inst.instance_id, "not registered")

    def _scrape(self, inst: Instance) -> None:
        import httpx

        if inst.admin is None or self._scraper is None or inst.exited is not None:
            return
        try:
            answer = self._scraper.get(f"http://{inst.admin}/metrics")
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            inst.scrapes.append(parse_metrics(answer.text, time.monotonic()))

    def _identities(self) -> None:
        import httpx

        assert self._scraper is not None
        for inst in self.instances:
            if inst.admin is None or inst.exited is not None:
                continue
            with contextlib.suppress(httpx.HTTPError, ValueError):
                stats = self._scraper.get(f"http://{inst.admin}/stats").json()
                inst.identity = stats.get("identity")
                inst.inbound_tls = (stats.get("listeners", {}).get("inbound") or {}).get("tls")

    # --- stop --------------------------------------------------------------------------

    def _stop(self) -> bool:
        """Stop everything in order; returns whether all went cleanly."""
        sidecars = [i.child for i in self.instances]
        if self.instances and self._scraper is not None:
            with contextlib.suppress(Exception):
                self._identities()
        if any(c.running() for c in sidecars):
            self._say(f"stopping {sum(c.running() for c in sidecars)} instances")
        clean = self._stop_children(sidecars, SIDECAR_STOP_S)
        for inst in self.instances:
            code = inst.child.proc.returncode
            if code not in (0, None, -signal.SIGKILL) and inst.exited is None:
                clean = False
                self._error(
                    f"{inst.child.name} exited with code {code}; its log: {inst.child.log_path}"
                )
        self._revoke_tokens()
        if self.server is not None:
            clean = self._stop_children([self.server], SERVER_STOP_S) and clean
        left_procs = self.procs.kill_left()
        if left_procs:
            clean = False
            pids = ", ".join(str(p.pid) for p in left_procs)
            self._error(f"processes left running after SIGKILL: {pids}")
        if self.server is not None or self.instances:
            self._say("stopped" if clean else "stopped, not cleanly")
        return clean

    def _stop_children(self, children: list[Child], timeout: float) -> bool:
        """SIGTERM, then SIGKILL after ``timeout`` (or a second signal); whether none needed it."""
        left = self.procs.stop(children, timeout, hurry=self.hurry)
        why = "on a second signal" if self.hurry.is_set() else f"{timeout:g}s after SIGTERM"
        for child in left:
            self._error(f"{child.name} still running {why}: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(5)
        return not left

    def _revoke_tokens(self) -> None:
        import httpx

        if self._api is None or self.server is None or not self.server.running():
            return
        for token_id, _ in self.tokens.values():
            with contextlib.suppress(httpx.HTTPError):
                self._api.delete(f"/api/v1/tokens/{token_id}", timeout=2.0)

    # --- summary -----------------------------------------------------------------------

    def summary(self, print_line: Callable[[str], None]) -> None:
        """Requests into every service and version, success rates, and how they travelled."""
        elapsed = time.monotonic() - self.started_at
        print_line(f"meshpy up: summary of {self.title} after {elapsed:.0f}s")
        groups: dict[tuple[str, str | None], list[Scrape]] = {}
        for inst in self.instances:
            key = (inst.replica.service, inst.replica.version)
            groups.setdefault(key, [])
            if inst.scrapes:
                groups[key].append(inst.scrapes[-1])
        service_total: dict[str, float] = {}
        for (service, _), scrapes in groups.items():
            service_total[service] = service_total.get(service, 0.0) + sum(
                s.requests for s in scrapes
            )
        width = max(len(f"{s} {v or ''}".strip()) for s, v in groups) if groups else 0
        order = {name: i for i, name in enumerate(self.mesh.services)}
        for service, version in sorted(groups, key=lambda k: (order[k[0]], k[1] or "")):
            scrapes = groups[(service, version)]
            requests = sum(s.requests for s in scrapes)
            errors = sum(s.inbound.get("5xx", 0.0) for s in scrapes)
            sent = sum(s.sent for s in scrapes)
            sent_errors = sum(s.outbound.get("5xx", 0.0) for s in scrapes)
            name = f"{service} {version or ''}".strip().ljust(width)
            line = f"  {name} {requests:8.0f} requests in"
            if version is not None and service_total[service] > 0:
                line += f", {fmt_pct(requests / service_total[service])} of {service}"
            if requests:
                line += f", {fmt_pct((requests - errors) / requests)} ok"
            if sent:
                line += f"; {sent:.0f} sent, {fmt_pct((sent - sent_errors) / sent)} ok"
            print_line(line)
        for job in self.rollouts:
            print_line("  " + job.summary())
        print_line("  " + self._mtls_line())

    def _mtls_line(self) -> str:
        last = [i.scrapes[-1] for i in self.instances if i.scrapes]
        total = sum(s.requests for s in last)
        mtls = sum(s.mtls for s in last)
        plaintext = sum(s.plaintext for s in last)
        modes = {i.inbound_tls for i in self.instances if i.admin is not None}
        identities = sorted({str(i.identity["identity"]) for i in self.instances if i.identity})
        if not total:
            verdict = "no requests between services"
        elif not plaintext and mtls >= total and modes <= {"strict"}:
            verdict = "every hop between services was mutual TLS"
        else:
            verdict = "NOT every hop between services was mutual TLS"
        listeners = ", ".join(sorted(str(m or "without tls") for m in modes)) or "-"
        return (
            f"mTLS: {verdict}: {total:.0f} requests into {len(last)} sidecars, "
            f"{plaintext:.0f} in plaintext; inbound listeners {listeners}; "
            f"identities {_compact(identities)}"
        )


def _compact(identities: list[str]) -> str:
    """spiffe://td/ns/default/sa/{a,b} for IDs that differ only in their last part."""
    if not identities:
        return "-"
    prefixes = {i.rpartition("/")[0] for i in identities}
    if len(identities) == 1 or len(prefixes) > 1:
        return ", ".join(identities)
    names = ",".join(i.rpartition("/")[2] for i in identities)
    return f"{prefixes.pop()}/{{{names}}}"


def _problem(answer: httpx.Response) -> str:
    try:
        problem = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if not isinstance(problem, dict):
        return f"HTTP {answer.status_code}"
    errors = problem.get("errors") or []
    detail = problem.get("detail") or problem.get("title") or f"HTTP {answer.status_code}"
    if errors:
        detail += ": " + "; ".join(f"{e.get('path')}: {e.get('message')}" for e in errors)
    return str(detail)
