"""``meshpy rollout``: a progressive canary gated on the mesh's own metrics of the candidate.

Two parts. The decision is pure: ``decide(before, after, thresholds)`` takes two readings
of the candidate's per-instance cumulative counters (``GET .../services/{svc}/stats``,
which the sidecars fill with each lease renewal) and says whether the step passed
(``promote``), needs more traffic (``hold``) or failed (``rollback``), and why. The error
rate is 5xx / all requests; the p99 is estimated from the duration histogram as
Prometheus's ``histogram_quantile`` does.

The driver, ``Rollout``, talks to the control plane through ``meshpy.rules``: for each
step it applies ``canary(service, stable=..., candidate=..., weight=step)`` (at 100, a
route of every request to the candidate), waits ``interval``, reads the candidate's stats
and decides. A failed step rolls back at once: a route of every request to the stable
version. When every step passed the candidate has all the traffic.

- **No traffic.** Fewer than ``min_requests`` requests reached the candidate in the
  interval: the step is held one more interval, and the window grows (the requests of the
  held intervals add up). After ``max_holds`` held intervals in a row, it rolls back as
  "no traffic": a candidate nobody called has not shown that it works.
- **Interrupted** (Ctrl-C, SIGTERM, which the CLI turns into ``KeyboardInterrupt``): it
  rolls back, then reports ``interrupted``.

Counters are taken per instance: an instance's difference between two readings, or, when
its counters were reset (a restarted sidecar: a new ``started_at``, or a counter that went
down), its whole new count. An instance that appeared counts in full; one that left
takes its last counts with it. Nothing is ever negative.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from meshpy.errors import MeshpyError
from meshpy.stats.histogram import bucket_bound, histogram_quantile

__all__ = [
    "Counters",
    "Decision",
    "Outcome",
    "Plan",
    "Rollout",
    "RolloutError",
    "StepResult",
    "Thresholds",
    "Verdict",
    "Window",
    "counters",
    "decide",
    "histogram_quantile",
    "parse_rate",
    "parse_steps",
    "window",
]

ERROR_CLASS = "5xx"

DEFAULT_STEPS = (5, 25, 50, 100)
DEFAULT_INTERVAL = "30s"
DEFAULT_MAX_ERROR_RATE = "1%"
DEFAULT_MAX_P99 = "250ms"
DEFAULT_MIN_REQUESTS = 10
DEFAULT_MAX_HOLDS = 3
"""The defaults of ``meshpy rollout`` and of a mesh file's ``rollouts``."""


# --- the settings, as people write them ---------------------------------------------------


def parse_steps(value: str | Sequence[object]) -> list[int]:
    """ "5,25,50,100" or [5, 25, 50, 100] -> [5, 25, 50, 100]: increasing percentages
    from 1 to 100. Raises ValueError saying what is wrong."""
    shown = value if isinstance(value, str) else list(value)
    if isinstance(value, str):
        parts: list[object] = [part for part in value.replace(" ", "").split(",") if part]
    else:
        parts = list(value)
    steps = []
    for part in parts:
        if isinstance(part, str) and part.strip().lstrip("+-").isdigit():
            steps.append(int(part))
        elif isinstance(part, int) and not isinstance(part, bool):
            steps.append(part)
        else:
            msg = f"{shown!r}: give percentages separated by commas, e.g. 5,25,50,100"
            raise ValueError(msg)
    if not steps or any(not 1 <= s <= 100 for s in steps):
        msg = f"{shown!r}: each step is a percentage from 1 to 100"
        raise ValueError(msg)
    if any(a >= b for a, b in itertools.pairwise(steps)):
        msg = f"{shown!r}: steps must increase"
        raise ValueError(msg)
    return steps


def parse_rate(value: object) -> float:
    """ "1%" or "0.01" (or 0.01) -> 0.01: a plain number is a fraction, at most 1.
    Raises ValueError saying what is wrong."""
    rate = -1.0
    if isinstance(value, str):
        stripped = value.strip()
        with contextlib.suppress(ValueError):
            rate = float(stripped[:-1]) / 100 if stripped.endswith("%") else float(stripped)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    if not 0.0 <= rate <= 1.0:
        msg = f"{value!r}: give a percentage (1%) or a fraction (0.01) from 0 to 1"
        raise ValueError(msg)
    return rate


# --- the decision ------------------------------------------------------------------------


class Verdict(StrEnum):
    """What a step's numbers say."""

    PROMOTE = "promote"
    """The step passed: go on to the next weight (or, after the last, give it all)."""
    HOLD = "hold"
    """Too few requests to judge: wait another interval at the same weight."""
    ROLLBACK = "rollback"
    """The candidate failed a threshold: every request back to the stable version."""


@dataclass(frozen=True)
class Thresholds:
    """The gate of each step."""

    max_error_rate: float
    """Largest share of 5xx answers, 0..1."""
    max_p99: float
    """Largest 99th percentile of the request duration, in seconds."""
    min_requests: int = 1
    """Fewer requests than this in a window: hold."""


@dataclass(frozen=True)
class Counters:
    """One instance's cumulative inbound counters, as its sidecar last reported them."""

    started_at: str | None = None
    requests: Mapping[str, int] = field(default_factory=dict)
    """By status class: {"2xx": 980, "5xx": 3}."""
    buckets: Mapping[str, int] = field(default_factory=dict)
    """Cumulative duration histogram by ``le``: {"0.005": 12, ..., "+Inf": 983}."""


def counters(stats: Mapping[str, Any]) -> dict[str, Counters]:
    """Per-instance counters from a ``GET .../stats`` answer, by instance id."""
    return {
        str(item["id"]): Counters(
            started_at=item.get("started_at"),
            requests={str(k): int(v) for k, v in (item.get("requests") or {}).items()},
            buckets={str(k): int(v) for k, v in (item.get("duration_buckets") or {}).items()},
        )
        for item in stats.get("instances", [])
    }


@dataclass(frozen=True)
class Window:
    """The candidate's traffic between two readings."""

    requests: int = 0
    errors: int = 0
    """5xx answers."""
    buckets: tuple[tuple[float, int], ...] = ()
    """The duration histogram of the window: (upper bound, cumulative count)."""
    resets: int = 0
    """Instances whose counters restarted (a restarted sidecar) in the window."""

    @property
    def error_rate(self) -> float | None:
        """5xx / all requests; None without requests."""
        return self.errors / self.requests if self.requests else None

    @property
    def p99(self) -> float | None:
        """Seconds; None without requests or histogram."""
        return histogram_quantile(0.99, self.buckets) if self.requests else None


def _was_reset(old: Counters, new: Counters) -> bool:
    if old.started_at != new.started_at:
        return True
    pairs = [(old.requests, new.requests), (old.buckets, new.buckets)]
    return any(new_map.get(k, 0) < v for old_map, new_map in pairs for k, v in old_map.items())


def window(before: Mapping[str, Counters], after: Mapping[str, Counters]) -> Window:
    """What the instances in ``after`` served since ``before``, per instance, never negative."""
    requests = errors = resets = 0
    buckets: dict[str, int] = {}
    for instance, new in after.items():
        old = before.get(instance)
        if old is not None and _was_reset(old, new):
            resets += 1
            old = None
        base = old or Counters()
        for cls, count in new.requests.items():
            delta = max(0, count - base.requests.get(cls, 0))
            requests += delta
            if cls == ERROR_CLASS:
                errors += delta
        for le, count in new.buckets.items():
            buckets[le] = buckets.get(le, 0) + max(0, count - base.buckets.get(le, 0))
    ordered = tuple(sorted((bucket_bound(le), count) for le, count in buckets.items()))
    return Window(requests, errors, ordered, resets)


@dataclass(frozen=True)
class Decision:
    """A verdict, why, and the numbers it came from."""

    verdict: Verdict
    reason: str
    window: Window


def fmt_rate(value: float) -> str:
    """A share as a percentage: 0.0123 -> "1.23%"."""
    text = f"{value * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def fmt_seconds(value: float) -> str:
    """Seconds as text: 0.25 -> "250ms", 2.0 -> "2s"."""
    if value < 1:
        return f"{value * 1000:.4g}ms"
    return f"{value:.4g}s"


def decide(
    before: Mapping[str, Counters], after: Mapping[str, Counters], thresholds: Thresholds
) -> Decision:
    """Promote, hold or roll back, given the candidate's counters at a step's start and end."""
    seen = window(before, after)
    if seen.requests < max(1, thresholds.min_requests):
        reason = (
            f"no traffic: {seen.requests} request(s) to the candidate, "
            f"{max(1, thresholds.min_requests)} needed to judge"
        )
        return Decision(Verdict.HOLD, reason, seen)
    rate = seen.errors / seen.requests
    p99 = seen.p99
    failed = []
    rate_text = f"error rate {fmt_rate(rate)} ({seen.errors} of {seen.requests})"
    if rate > thresholds.max_error_rate:
        failed.append(f"{rate_text} > {fmt_rate(thresholds.max_error_rate)}")
    if p99 is not None and p99 > thresholds.max_p99:
        failed.append(f"p99 {fmt_seconds(p99)} > {fmt_seconds(thresholds.max_p99)}")
    if failed:
        return Decision(Verdict.ROLLBACK, "; ".join(failed), seen)
    p99_text = "p99 unknown (no histogram)" if p99 is None else f"p99 {fmt_seconds(p99)}"
    reason = (
        f"{rate_text} <= {fmt_rate(thresholds.max_error_rate)}, "
        f"{p99_text} <= {fmt_seconds(thresholds.max_p99)}"
    )
    return Decision(Verdict.PROMOTE, reason, seen)


# --- the driver --------------------------------------------------------------------------


class Mesh(Protocol):
    """What the driver needs of ``meshpy.rules.Client``."""

    def apply(self, *resources: Any) -> Any: ...

    def stats(
        self, service: str, *, version: str | None = None, namespace: str | None = None
    ) -> dict[str, Any]: ...


class RolloutError(MeshpyError):
    """The rollout cannot start (nothing was changed)."""


@dataclass(frozen=True)
class Plan:
    """What to roll out, and the gate."""

    service: str
    candidate: str
    stable: str
    steps: Sequence[int]
    """Percentages of traffic to the candidate, increasing, each 1..100."""
    interval_s: float
    thresholds: Thresholds
    namespace: str = "default"
    max_holds: int = 3
    """Intervals a step may be held for lack of traffic before it rolls back."""

    def __post_init__(self) -> None:
        if not self.steps:
            msg = "give at least one step"
            raise ValueError(msg)
        if any(not 1 <= s <= 100 for s in self.steps):
            msg = f"steps are percentages from 1 to 100, not {list(self.steps)}"
            raise ValueError(msg)
        if any(a >= b for a, b in zip(self.steps, self.steps[1:], strict=False)):
            msg = f"steps must increase: {list(self.steps)}"
            raise ValueError(msg)
        if self.stable == self.candidate:
            msg = f"the stable and candidate versions are both {self.stable!r}"
            raise ValueError(msg)
        if not self.interval_s > 0:
            msg = f"the interval must be more than 0 seconds, not {self.interval_s}"
            raise ValueError(msg)


@dataclass(frozen=True)
class StepResult:
    """One evaluated interval of a step."""

    weight: int
    decision: Decision
    elapsed_s: float


@dataclass(frozen=True)
class Outcome:
    """How the rollout ended."""

    result: str
    """``promoted``, ``rolled back`` or ``interrupted`` (which rolled back too)."""
    reason: str
    weight: int
    """The weight of the step it ended on."""
    steps: list[StepResult]
    elapsed_s: float

    @property
    def promoted(self) -> bool:
        """Whether the candidate has all the traffic now."""
        return self.result == "promoted"


class Rollout:
    """Runs a ``Plan`` against the control plane (``mesh``: a ``meshpy.rules.Client``)."""

    def __init__(
        self,
        plan: Plan,
        mesh: Mesh,
        *,
        narrate: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.mesh = mesh
        self.narrate = narrate
        self.sleep = sleep
        self.clock = clock

    # --- I/O --------------------------------------------------------------------------------

    def _read(self) -> dict[str, Counters]:
        plan = self.plan
        answer = self.mesh.stats(plan.service, version=plan.candidate, namespace=plan.namespace)
        return counters(answer)

    def _route_all_to(self, version: str) -> None:
        from meshpy.rules import route

        plan = self.plan
        self.mesh.apply(route(plan.service, to=version, namespace=plan.namespace))

    def _set_weight(self, weight: int) -> None:
        from meshpy.rules import canary

        plan = self.plan
        if weight == 100:
            self._route_all_to(plan.candidate)
            return
        self.mesh.apply(
            canary(
                plan.service,
                stable=plan.stable,
                candidate=plan.candidate,
                weight=weight,
                namespace=plan.namespace,
            )
        )

    def check(self) -> float | None:
        """Before anything changes: both versions have a healthy instance. Returns how
        often instances report (seconds), or None if unknown. Raises RolloutError."""
        plan = self.plan
        every: float | None = None
        for version in (plan.stable, plan.candidate):
            stats = self.mesh.stats(plan.service, version=version, namespace=plan.namespace)
            every = stats.get("reported_every_s", every)
            healthy = [i for i in stats.get("instances", []) if i.get("state") == "healthy"]
            if not healthy:
                msg = f"{plan.service}-{version} has no healthy instance"
                raise RolloutError(msg)
        return float(every) if every is not None else None

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> Outcome:
        """Step through the plan; promote, or roll back at the first failure."""
        plan = self.plan
        started = self.clock()
        history: list[StepResult] = []
        weight = 0
        try:
            for number, weight in enumerate(plan.steps, 1):
                self._set_weight(weight)
                self.narrate(
                    f"step {number}/{len(plan.steps)}: {weight}% of {plan.service} to "
                    f"{plan.candidate}, {100 - weight}% to {plan.stable}; "
                    f"watching for {fmt_seconds(plan.interval_s)}"
                )
                failed = self._watch(weight, history, started)
                if failed is not None:
                    return self._roll_back("rolled back", failed, weight, history, started)
            if plan.steps[-1] != 100:
                self._route_all_to(plan.candidate)
        except KeyboardInterrupt:
            return self._roll_back("interrupted", "interrupted", weight, history, started)
        except Exception as err:
            # The control plane failed us half-way: try to leave the stable version serving.
            self.narrate(f"error: {err}; rolling back")
            try:
                self._route_all_to(plan.stable)
            except Exception as again:
                self.narrate(f"error: the rollback failed too: {again}")
            raise
        reason = f"every step passed; {plan.service}-{plan.candidate} has all the traffic"
        self.narrate(f"promoted: {reason}")
        return Outcome("promoted", reason, 100, history, self.clock() - started)

    def _watch(self, weight: int, history: list[StepResult], started: float) -> str | None:
        """Watch one step until it passes (None) or fails (the reason)."""
        plan = self.plan
        before = self._read()
        holds = 0
        while True:
            self.sleep(plan.interval_s)
            decision = decide(before, self._read(), plan.thresholds)
            history.append(StepResult(weight, decision, self.clock() - started))
            if decision.verdict is Verdict.PROMOTE:
                self.narrate(f"  {weight}%: ok: {decision.reason}")
                return None
            if decision.verdict is Verdict.ROLLBACK:
                self.narrate(f"  {weight}%: failed: {decision.reason}")
                return decision.reason
            holds += 1
            if holds > plan.max_holds:
                self.narrate(f"  {weight}%: {decision.reason}, {holds} interval(s) in a row")
                return f"{decision.reason} after {holds} interval(s)"
            # The window grows: the next reading is compared with the same ``before``.
            self.narrate(f"  {weight}%: holding ({holds}/{plan.max_holds}): {decision.reason}")

    def _roll_back(
        self, result: str, reason: str, weight: int, history: list[StepResult], started: float
    ) -> Outcome:
        plan = self.plan
        self.narrate(f"rolling back: every request of {plan.service} to {plan.stable}")
        self._route_all_to(plan.stable)
        return Outcome(result, reason, weight, history, self.clock() - started)
