"""The mesh file of ``meshpy up``: services, versions and replicas, resources, rollouts, tracing.

::

    name: shop                       # optional: shown in the table (default: the directory's name)
    services:                        # service name (a DNS label) -> how to run it
      cart:
        run: python -m meshpy.demo.shop cart   # a command line (split like a shell), or a list
        replicas: 2                  # instances (default 1; 0 runs none)
        health: /healthz             # an HTTP path that must answer 2xx/3xx, or tcp (default)
        env: {KEY: value}            # extra environment of the app (default none)
        restart: always              # always (default) | on-failure | never
        depends_on: [payment]        # start once every instance of these is healthy
      payment:
        health: /healthz             # health, env and restart apply to every version...
        versions:                    # ...instead of run and replicas, one entry per version;
          v1: {run: python -m meshpy.demo.shop payment, replicas: 2}       # an instance of v2
          v2: {run: python -m meshpy.demo.shop payment --fail-rate 0.02}   # is also in payment-v2
    resources: [routes/payment-canary.yaml]   # applied before anything starts (relative paths
                                              # are relative to this file)
    rollouts:                        # optional: progressive canaries (meshpy.rollout), each
      - service: payment             # started once every instance is healthy
        to: v2                       # the candidate: a version of the service
        from: v1                     # the stable version (default: the service's other one)
        after: 10s                   # wait this long after the mesh is ready (default 0s)
        steps: [10, 50, 100]         # % of traffic to the candidate (default 5,25,50,100)
        interval: 5s                 # how long each step is watched (default 30s)
        max_error_rate: 1%           # or 0.01: the most 5xx of the candidate (default 1%)
        max_p99: 250ms               # its largest p99 (default 250ms)
        min_requests: 10             # fewer in a step: hold it an interval (default 10)
        max_holds: 3                 # held intervals before a rollback, "no traffic" (default 3)
    tracing:                         # optional: the mesh's tracing
      sample_percent: 10             # % of the traces started at a sidecar that are recorded
                                     # (default: the server's, MESHPY_TRACE_SAMPLE_PERCENT, 1)

Durations are a number of seconds or a duration (500ms, 5s, 2m). Unknown fields are
refused. ``load`` raises ``MeshFileError`` whose lines each name the
bad field (``services.payment.versions.v2.replicas: ...``).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from meshpy import rollout as gate
from meshpy.errors import MeshpyError
from meshpy.names import is_name

__all__ = [
    "DEFAULT_HEALTH",
    "MeshFile",
    "MeshFileError",
    "Replica",
    "RolloutSpec",
    "Service",
    "Version",
    "load",
    "parse",
]

DEFAULT_HEALTH = "tcp"
MAX_REPLICAS = 64

Restart = Literal["always", "on-failure", "never"]


class MeshFileError(MeshpyError):
    """The mesh file was refused; ``problems`` are ``(path, message)`` pairs, the first first."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """One ``<file>: <path>: <message>`` line per problem."""
        return [
            f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}"
            for path, message in self.problems
        ]


def _command(value: object) -> tuple[str, ...]:
    """A command line as a string (split like a shell) or a list of strings."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command line: {exc}") from None
    elif isinstance(value, list | tuple) and all(isinstance(w, str) for w in value):
        words = list(value)
    else:
        msg = "expected a command line (a string) or a list of strings"
        raise ValueError(msg)
    if not words or not words[0]:
        msg = "the command is empty"
        raise ValueError(msg)
    return tuple(words)


def _env(value: object) -> dict[str, str]:
    """Environment variables; scalar values (numbers, booleans) are written as strings."""
    if not isinstance(value, dict):
        msg = "expected a mapping of NAME: value"
        raise ValueError(msg)
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise ValueError(f"{key!r} is not an environment variable name")
        if isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, int | float | str):
            out[key] = str(item)
        else:
            raise ValueError(f"{key}: expected a string, not {type(item).__name__}")
    return out


def _health(value: object) -> str:
    if value == "tcp" or (isinstance(value, str) and value.startswith("/")):
        return value
    msg = "expected an HTTP path such as /healthz, or tcp"
    raise ValueError(msg)


def _name(value: object) -> str:
    if isinstance(value, str) and is_name(value):
        return value
    msg = "expected lowercase letters, digits and '-' (a DNS label, at most 63 characters)"
    raise ValueError(msg)


def _seconds(value: object) -> float:
    """A number of seconds (10, 0.5) or a duration ("500ms", "5s", "2m"), at least 0."""
    from meshpy.durations import parse_seconds

    seconds = -1.0
    if isinstance(value, str):
        seconds = parse_seconds(value)  # its ValueError says what a duration looks like
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    if not 0 <= seconds < 1e9:
        msg = "expected a number of seconds or a duration such as 500ms, 5s or 2m"
        raise ValueError(msg)
    return seconds


def _steps(value: object) -> tuple[int, ...]:
    if not isinstance(value, str | list | tuple):
        msg = "expected a list of percentages such as [10, 50, 100]"
        raise ValueError(msg)
    return tuple(gate.parse_steps(value))


Command = Annotated[tuple[str, ...], BeforeValidator(_command)]
Env = Annotated[dict[str, str], BeforeValidator(_env)]
Health = Annotated[str, BeforeValidator(_health)]
Name = Annotated[str, BeforeValidator(_name)]
Seconds = Annotated[float, BeforeValidator(_seconds)]
Steps = Annotated[tuple[int, ...], BeforeValidator(_steps)]
Rate = Annotated[float, BeforeValidator(gate.parse_rate)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Version(_Strict):
    """One version of a service: what it runs and how many; unset fields come from the service."""

    run: Command
    replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    health: Health | None = None
    env: Env = Field(default_factory=dict)
    restart: Restart | None = None


class Service(_Strict):
    """A service: ``run`` and ``replicas``, or ``versions``."""

    run: Command | None = None
    replicas: int | None = Field(default=None, ge=0, le=MAX_REPLICAS)
    versions: dict[Name, Version] | None = None
    health: Health = DEFAULT_HEALTH
    env: Env = Field(default_factory=dict)
    restart: Restart = "always"
    depends_on: list[Name] = Field(default_factory=list)

    @model_validator(mode="after")
    def _run_or_versions(self) -> Service:
        if self.versions is None:
            if self.run is None:
                msg = "give run (and replicas), or versions"
                raise ValueError(msg)
        elif self.run is not None or self.replicas is not None:
            msg = "give run and replicas, or versions, not both: each version has its own"
            raise ValueError(msg)
        elif not self.versions:
            msg = "versions is empty"
            raise ValueError(msg)
        return self


class RolloutSpec(_Strict):
    """A progressive canary of ``service`` to version ``to``, as ``meshpy rollout`` runs it."""

    service: Name
    to: Name
    from_: Name | None = Field(default=None, alias="from")
    after: Seconds = 0.0
    steps: Steps = gate.DEFAULT_STEPS
    interval: Seconds = Field(default=_seconds(gate.DEFAULT_INTERVAL), gt=0)
    max_error_rate: Rate = gate.parse_rate(gate.DEFAULT_MAX_ERROR_RATE)
    max_p99: Seconds = _seconds(gate.DEFAULT_MAX_P99)
    min_requests: int = Field(default=gate.DEFAULT_MIN_REQUESTS, ge=1)
    max_holds: int = Field(default=gate.DEFAULT_MAX_HOLDS, ge=0)

    def plan(self, stable: str, namespace: str = "default") -> gate.Plan:
        """The rollout module's plan, with ``stable`` as the version to go back to."""
        thresholds = gate.Thresholds(
            max_error_rate=self.max_error_rate,
            max_p99=self.max_p99,
            min_requests=self.min_requests,
        )
        return gate.Plan(
            service=self.service,
            candidate=self.to,
            stable=stable,
            steps=self.steps,
            interval_s=self.interval,
            thresholds=thresholds,
            namespace=namespace,
            max_holds=self.max_holds,
        )


class TracingSpec(_Strict):
    """The mesh's tracing: how many of the traces that start at a sidecar are recorded."""

    sample_percent: float = Field(ge=0.0, le=100.0)

    def server_env(self) -> dict[str, str]:
        """The control plane's environment that sets it."""
        return {"MESHPY_TRACE_SAMPLE_PERCENT": f"{self.sample_percent:g}"}


class MeshFile(_Strict):
    """A whole mesh: its services, the resources (routes, policies) to apply, its rollouts
    and its tracing."""

    name: str | None = None
    services: dict[Name, Service] = Field(min_length=1)
    resources: list[str] = Field(default_factory=list)
    rollouts: list[RolloutSpec] = Field(default_factory=list)
    tracing: TracingSpec | None = None

    @model_validator(mode="after")
    def _names_and_dependencies(self) -> MeshFile:
        for name, service in self.services.items():
            for version in service.versions or {}:
                combined = f"{name}-{version}"
                if combined in self.services:
                    msg = f"{combined!r} is also a service (the instances of {name} {version})"
                    raise _FieldError(f"services.{name}.versions.{version}", msg)
                if len(combined) > 63:
                    msg = f"'{combined}' (the version service) is longer than 63 characters"
                    raise _FieldError(f"services.{name}.versions.{version}", msg)
            for i, dep in enumerate(service.depends_on):
                if dep not in self.services:
                    raise _FieldError(
                        f"services.{name}.depends_on[{i}]", f"no service {dep!r} here"
                    )
                if dep == name:
                    msg = "a service cannot wait for itself"
                    raise _FieldError(f"services.{name}.depends_on[{i}]", msg)
        cycle = _find_cycle({n: s.depends_on for n, s in self.services.items()})
        if cycle:
            path = f"services.{cycle[0]}.depends_on"
            raise _FieldError(path, "a dependency cycle: " + " -> ".join([*cycle, cycle[0]]))
        self.plans()  # a rollout of versions this file does not run is refused here
        return self

    def plans(self, namespace: str = "default") -> list[gate.Plan]:
        """Each rollout's plan, its stable version found; raises _FieldError naming the field."""
        plans: list[gate.Plan] = []
        for i, spec in enumerate(self.rollouts):
            where = f"rollouts[{i}]"
            service = self.services.get(spec.service)
            if service is None:
                raise _FieldError(f"{where}.service", f"no service {spec.service!r} here")
            versions = list(service.versions or {})
            if not versions:
                msg = f"{spec.service} has no versions: give it versions to roll out"
                raise _FieldError(f"{where}.service", msg)
            listed = ", ".join(versions)
            if spec.to not in versions:
                msg = f"{spec.service} has no version {spec.to!r} (it has {listed})"
                raise _FieldError(f"{where}.to", msg)
            stable = spec.from_
            if stable is None:
                others = [v for v in versions if v != spec.to]
                if len(others) != 1:
                    msg = (
                        f"give from: {spec.service} has {len(others)} version(s) besides "
                        f"{spec.to} ({', '.join(others) or 'none'})"
                    )
                    raise _FieldError(where, msg)
                stable = others[0]
            elif stable not in versions:
                msg = f"{spec.service} has no version {stable!r} (it has {listed})"
                raise _FieldError(f"{where}.from", msg)
            elif stable == spec.to:
                msg = f"the stable version is the candidate too ({stable!r})"
                raise _FieldError(f"{where}.from", msg)
            earlier = next(
                (j for j, other in enumerate(self.rollouts[:i]) if other.service == spec.service),
                None,
            )
            if earlier is not None:
                msg = f"{spec.service} already has a rollout (rollouts[{earlier}]): one each"
                raise _FieldError(f"{where}.service", msg)
            try:
                plans.append(spec.plan(stable, namespace))
            except ValueError as exc:
                raise _FieldError(where, str(exc)) from None
        return plans

    def waves(self) -> list[list[str]]:
        """Service names in start order: each list once the ones before it are healthy."""
        done: set[str] = set()
        waves: list[list[str]] = []
        while len(done) < len(self.services):
            wave = [
                n
                for n, s in self.services.items()
                if n not in done and all(d in done for d in s.depends_on)
            ]
            waves.append(wave)
            done.update(wave)
        return waves

    def replicas(self) -> Iterator[Replica]:
        """Every instance to run, in the order of ``waves``."""
        for wave, names in enumerate(self.waves()):
            for name in names:
                yield from _replicas(name, self.services[name], wave)


class _FieldError(ValueError):
    """A model-level problem that belongs to a field deeper down."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class Replica:
    """One instance to start: ``meshpy run`` of ``command`` as ``service`` (``version``)."""

    name: str
    """Unique in the mesh: cart-1, payment-v2-1."""
    service: str
    version: str | None
    command: tuple[str, ...]
    health: str
    env: dict[str, str]
    restart: Restart
    wave: int


def _replicas(name: str, service: Service, wave: int) -> Iterator[Replica]:
    if service.versions is None:
        assert service.run is not None
        for i in range(1 if service.replicas is None else service.replicas):
            yield Replica(
                f"{name}-{i + 1}",
                name,
                None,
                service.run,
                service.health,
                dict(service.env),
                service.restart,
                wave,
            )
        return
    for version, spec in service.versions.items():
        for i in range(spec.replicas):
            yield Replica(
                f"{name}-{version}-{i + 1}",
                name,
                version,
                spec.run,
                spec.health or service.health,
                {**service.env, **spec.env},
                spec.restart or service.restart,
                wave,
            )


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle of ``graph`` (name -> names it depends on) as a list of names, or []."""
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return path[path.index(dep) :]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        context = error.get("ctx") or {}
        cause = context.get("error")
        if isinstance(cause, _FieldError):
            problems.append((_where((*loc, *cause.path.split("."))), cause.message))
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "required"
        elif error["type"] == "too_short" and loc == ("services",):
            message = "name at least one service"
        problems.append((_where(loc), message))
    return problems


def parse(data: object, source: str = "mesh.yaml") -> MeshFile:
    """Validate a loaded document; raises MeshFileError naming the bad fields."""
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}"
        raise MeshFileError(source, [("", f"expected a mapping with services, not {what}")])
    try:
        return MeshFile.model_validate(data)
    except ValidationError as exc:
        raise MeshFileError(source, _problems(exc)) from None


def load(path: Path) -> tuple[MeshFile, list[Path]]:
    """Read and validate the mesh file; returns it and its resource files (resolved).

    Raises MeshFileError (the file cannot be read, is not YAML, has bad fields, names
    resource files that are missing).
    """
    from meshpy.configfile import ConfigFileError, _parse_yaml

    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MeshFileError(source, [("", str(reason))]) from None
    try:
        data = _parse_yaml(text)
    except ConfigFileError as exc:
        raise MeshFileError(source, [("", str(exc))]) from None
    mesh = parse(data, source)
    files = []
    for i, name in enumerate(mesh.resources):
        resolved = path.parent / name
        if not resolved.is_file():
            raise MeshFileError(source, [(f"resources[{i}]", f"no such file: {resolved}")])
        files.append(resolved)
    return mesh, files
