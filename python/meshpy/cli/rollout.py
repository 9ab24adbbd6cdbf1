"""``meshpy rollout SERVICE --to v2``: a progressive canary gated on the candidate's metrics.

Each step applies a canary HTTPRoute (``meshpy.rules.canary``, named after the service)
with the step's weight, waits ``--interval``, and reads the candidate's inbound stats
from the control plane: more 5xx than ``--max-error-rate`` or a p99 above ``--max-p99``
rolls back at once (every request to the stable version), exit 1. Fewer than
``--min-requests`` requests hold the step another interval, up to ``--max-holds``
times, then roll back as "no traffic". Ctrl-C (or SIGTERM) rolls back and exits 130.
When every step passed, the candidate gets every request, exit 0.

What happens is narrated on stderr; the outcome is one line on stdout.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import TYPE_CHECKING

import typer

from meshpy.cli._client import SERVER_OPTION, TOKEN_OPTION, fail, narrate

if TYPE_CHECKING:
    from meshpy.rollout import Outcome, Plan, Thresholds
    from meshpy.rules import Client

__all__ = ["parse_rate", "parse_steps", "rollout"]

EXIT_INTERRUPTED = 130


def parse_steps(text: str) -> list[int]:
    """ "5,25,50,100" -> [5, 25, 50, 100]: increasing percentages from 1 to 100."""
    from meshpy import rollout as gate

    try:
        return gate.parse_steps(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--steps") from None


def parse_rate(text: str) -> float:
    """ "1%" or "0.01" -> 0.01 (a plain number is a fraction, at most 1)."""
    from meshpy import rollout as gate

    try:
        return gate.parse_rate(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--max-error-rate") from None


def rollout(
    service: str = typer.Argument(..., metavar="SERVICE", help="The service whose traffic moves."),
    to: str = typer.Option(..., "--to", metavar="VERSION", help="The candidate version."),
    from_: str | None = typer.Option(
        None,
        "--from",
        metavar="VERSION",
        help="The stable version [default: the service's other version, if it has one].",
    ),
    steps: str = typer.Option(
        "5,25,50,100",
        "--steps",
        metavar="PERCENTS",
        help="Percentages of traffic to the candidate, step by step.",
    ),
    interval: str = typer.Option(
        "30s",
        "--interval",
        metavar="DURATION",
        help="How long each step is watched (30s, 2m, 500ms).",
    ),
    max_error_rate: str = typer.Option(
        "1%",
        "--max-error-rate",
        metavar="RATE",
        help="Largest share of 5xx answers of the candidate.",
    ),
    max_p99: str = typer.Option(
        "250ms",
        "--max-p99",
        metavar="DURATION",
        help="Largest 99th percentile of the candidate's request duration.",
    ),
    min_requests: int = typer.Option(
        10,
        "--min-requests",
        min=1,
        metavar="N",
        help="Fewer requests to the candidate in a step: hold it.",
    ),
    max_holds: int = typer.Option(
        3,
        "--max-holds",
        min=0,
        metavar="N",
        help="Intervals a step may be held for lack of traffic; then roll back (no traffic).",
    ),
    namespace: str = typer.Option(
        "default", "--namespace", "-n", metavar="NS", help="The namespace."
    ),
    server: str | None = SERVER_OPTION,
    token: str | None = TOKEN_OPTION,
) -> None:
    """Shift SERVICE's traffic to version --to step by step, gated on its error rate and p99.

    Exit 0: promoted (the candidate gets every request). Exit 1: rolled back (every
    request to the stable version) or an error. Exit 130: interrupted, rolled back.
    """
    from meshpy.cli.run import parse_seconds_option

    step_list = parse_steps(steps)
    interval_s = parse_seconds_option(interval, "--interval")
    if interval_s <= 0:
        raise typer.BadParameter("must be more than 0", param_hint="--interval")
    rate = parse_rate(max_error_rate)
    p99 = parse_seconds_option(max_p99, "--max-p99")

    from meshpy.rollout import Thresholds
    from meshpy.rules import ApiError, Client

    thresholds = Thresholds(max_error_rate=rate, max_p99=p99, min_requests=min_requests)
    with Client(server, token, namespace=namespace) as mesh:
        try:
            plan, outcome = _run(
                mesh, service, to, from_, step_list, interval_s, thresholds, max_holds
            )
        except ApiError as exc:
            fail(str(exc))
    typer.echo(_summary(plan, outcome))
    if outcome.result == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if not outcome.promoted:
        raise typer.Exit(1)


def _run(
    mesh: Client,
    service: str,
    candidate: str,
    stable: str | None,
    steps: list[int],
    interval_s: float,
    thresholds: Thresholds,
    max_holds: int,
) -> tuple[Plan, Outcome]:
    from meshpy.rollout import Plan, Rollout, RolloutError, fmt_seconds

    stable = stable or _other_version(mesh, service, candidate)
    try:
        plan = Plan(
            service=service,
            candidate=candidate,
            stable=stable,
            steps=steps,
            interval_s=interval_s,
            thresholds=thresholds,
            namespace=mesh.namespace,
            max_holds=max_holds,
        )
    except ValueError as exc:
        fail(str(exc))
    runner = Rollout(plan, mesh, narrate=narrate)
    try:
        every = runner.check()
    except RolloutError as exc:
        fail(f"{exc}; nothing was changed")
    if every is not None and interval_s < 2 * every:
        narrate(
            f"warning: sidecars report every {fmt_seconds(every)}: an interval of "
            f"{fmt_seconds(interval_s)} sees little of each step (use {fmt_seconds(2 * every)} "
            "or more)"
        )
    narrate(
        f"rollout of {service}: {stable} -> {candidate} in steps of "
        f"{','.join(map(str, steps))}%, {fmt_seconds(interval_s)} each"
    )
    with _interrupts_once():
        return plan, runner.run()


def _other_version(mesh: Client, service: str, candidate: str) -> str:
    versions = {str(i.get("version") or "") for i in mesh.stats(service).get("instances", [])}
    others = sorted(v for v in versions - {candidate} if v)
    if len(others) != 1:
        found = ", ".join(others) or "none"
        fail(f"give --from: {service} has {len(others)} version(s) besides {candidate} ({found})")
    return others[0]


class _interrupts_once:  # noqa: N801 - used as a context manager, like a function
    """SIGINT and SIGTERM raise KeyboardInterrupt once; later ones wait for the rollback."""

    def __enter__(self) -> None:
        self.fired = False
        self.saved = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.fired:
            narrate("rolling back; wait for it to finish")
            return
        self.fired = True
        raise KeyboardInterrupt

    def __exit__(self, *_: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def _summary(plan: Plan, outcome: Outcome) -> str:
    from meshpy.rollout import fmt_seconds

    took = fmt_seconds(round(outcome.elapsed_s, 1))
    if outcome.promoted:
        steps = len({s.weight for s in outcome.steps})
        return (
            f"{plan.service}: promoted {plan.candidate} (from {plan.stable}) after {steps} "
            f"step(s) in {took}: every request goes to {plan.service}-{plan.candidate}"
        )
    what = "interrupted, rolled back" if outcome.result == "interrupted" else "rolled back"
    return (
        f"{plan.service}: {what} to {plan.stable} at {outcome.weight}% of {plan.candidate} "
        f"after {took}: {outcome.reason}"
    )
