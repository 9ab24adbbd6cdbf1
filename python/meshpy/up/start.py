"""Start a mesh file: the control plane, a token per service, the resources, then the instances.

The control plane is ``meshpy server`` as a child (data in the home directory). The
instances start wave by wave: a service starts once every instance of the services in
its ``depends_on`` is healthy. Each is ``meshpy run`` with its own state directory, its
version, ``MESHPY_TOKEN`` and ``MESHPY_SERVER``, and ``--events <home>/events/<name>.jsonl``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

from meshpy.sidecar.events import EventReader
from meshpy.up.controlplane import NAMESPACE, ControlPlane, StartError
from meshpy.up.instance import Instance
from meshpy.up.meshfile import Replica
from meshpy.up.procs import child_environment
from meshpy.up.state import UpState

__all__ = ["start"]

TOKEN_TTL = "720h"


def start(up: UpState) -> None:
    """Start everything, or stop trying once ``up.stopping`` is set; raises StartError."""
    up.home.mkdir(parents=True, exist_ok=True)
    server = _start_server(up)
    if server is None or up.stopping.is_set():
        return
    _create_tokens(up, server)
    _apply_resources(up, server)
    for wave in _waves(up, server):
        if up.stopping.is_set():
            return
        up.out.say("starting " + ", ".join(i.replica.name for i in wave))
        _wait_healthy(up, server, wave)
    if not up.stopping.is_set():
        took = time.monotonic() - up.started_at
        services = len(up.mesh.services)
        up.out.say(
            f"ready: {len(up.instances)} instances of {services} services in {took:.1f}s "
            "(Ctrl-C stops everything)"
        )


def _start_server(up: UpState) -> ControlPlane | None:
    """The control plane, ready; None if a stop came before it listened."""
    import httpx

    env = child_environment()
    if up.mesh.tracing is not None:
        env.update(up.mesh.tracing.server_env())
    up.server = server = ControlPlane.spawn(up.procs, up.home, up.options.listen, env)
    server.wait_ready(up.stopping)
    if not server.url:
        return None
    up.sidecars = httpx.Client(timeout=2.0, trust_env=False)
    token_file = up.home / "admin-token"
    up.out.say(f"{up.title}: control plane {server.url}, data and logs in {up.home}")
    up.out.say(
        f"admin token in {token_file}: with MESHPY_HOME={up.home} (the default from "
        f"{up.home.parent}), `meshpy service list`, `meshpy get httproutes` and "
        "`meshpy proxy status` work from another terminal"
    )
    return server


def _create_tokens(up: UpState, server: ControlPlane) -> None:
    for service in up.mesh.services:
        created = server.request(
            "POST",
            "/api/v1/tokens",
            json={"service": service, "namespace": NAMESPACE, "ttl": TOKEN_TTL},
        )
        up.tokens[service] = (str(created["id"]), str(created["token"]))


def _apply_resources(up: UpState, server: ControlPlane) -> None:
    for path in up.resources:
        text = path.read_text(encoding="utf-8")
        result = server.request(
            "POST",
            "/api/v1/apply",
            params={"namespace": NAMESPACE},
            content=text.encode(),
            headers={"Content-Type": "application/yaml"},
        )
        done = ", ".join(
            f"{item['kind'].lower()}/{item['name']} {item['result']}" for item in result["items"]
        )
        up.out.say(f"applied {path.name}: {done}")


def _waves(up: UpState, server: ControlPlane) -> Iterator[list[Instance]]:
    replicas = list(up.mesh.replicas())
    for wave in sorted({r.wave for r in replicas}):
        started = [_spawn_replica(up, server, r) for r in replicas if r.wave == wave]
        if started:
            yield started


def _spawn_replica(up: UpState, server: ControlPlane, replica: Replica) -> Instance:
    argv = [sys.executable, "-m", "meshpy", "run", "--service", replica.service]
    if replica.version:
        argv += ["--version", replica.version]
    argv += ["--health", replica.health, "--restart", replica.restart]
    events = up.home / "events" / f"{replica.name}.jsonl"
    events.parent.mkdir(parents=True, exist_ok=True)
    events.unlink(missing_ok=True)  # a file of an earlier run says nothing of this one
    argv += ["--state-dir", str(up.home / "state" / replica.name), "--events", str(events)]
    argv += ["--server", server.url, "--", *replica.command]
    env = child_environment()
    env.update(replica.env)
    env["MESHPY_TOKEN"] = up.tokens[replica.service][1]
    env["MESHPY_SERVER"] = server.url
    try:
        child = up.procs.spawn(replica.name, argv, env=env, cwd=up.options.base_dir)
    except OSError as exc:
        raise StartError(f"cannot start {replica.name}: {exc}") from None
    instance = Instance(replica, child, EventReader(events))
    up.instances.append(instance)
    return instance


def _wait_healthy(up: UpState, server: ControlPlane, wave: list[Instance]) -> None:
    deadline = time.monotonic() + up.options.ready_timeout
    while not up.stopping.is_set():
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
        server.check()
        server.refresh_states(wave)
        if all(i.state == "healthy" for i in wave):
            return
        if time.monotonic() > deadline:
            late = next(i for i in wave if i.state != "healthy")
            msg = (
                f"{late.replica.name} is not healthy after {up.options.ready_timeout:g}s "
                f"(state {late.state})"
            )
            raise StartError(msg, late.child)
        up.procs.look()
        up.stopping.wait(0.2)
