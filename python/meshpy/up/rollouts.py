"""The mesh file's ``rollouts`` under ``meshpy up``: each a ``meshpy.rollout.Rollout`` on a thread.

A ``Job`` waits ``after`` seconds (from the moment every instance is healthy), checks that
both versions have a healthy instance, then steps through its plan against the embedded
control plane, narrating each step as a line. When ``meshpy up`` stops early (a signal,
the end of ``--duration``) the ``stop`` event cuts the current step short: the rollout
rolls back (``interrupted``) and the thread ends, without waiting out the interval. A
rollout that cannot start is reported, and the mesh goes on.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Protocol

from meshpy.rollout import Mesh, Outcome, Plan, Rollout, RolloutError, fmt_seconds
from meshpy.rules import ApiError

__all__ = ["Job"]


class Connection(Mesh, Protocol):
    """A ``meshpy.rules.Client``: the rollout's ``Mesh``, closed at the end."""

    def close(self) -> None: ...


class Job:
    """One rollout of the mesh file, run on its own thread."""

    def __init__(
        self,
        plan: Plan,
        after_s: float,
        connect: Callable[[], Connection],
        stop: threading.Event,
        say: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.after_s = after_s
        self.connect = connect
        self.stop = stop
        self.say = say
        self.status = f"starts in {fmt_seconds(after_s)}" if after_s > 0 else "starting"
        """What it is doing, in a few words (for the live view's footer)."""
        self.outcome: Outcome | None = None
        self.result: str | None = None
        """How it ended, once it did: the summary's words after the name."""
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        """``payment v1 -> v2``"""
        plan = self.plan
        return f"{plan.service} {plan.stable} -> {plan.candidate}"

    def start(self) -> None:
        """Run on a daemon thread: it never keeps the process alive."""
        self._thread = threading.Thread(
            target=self.run, name=f"rollout-{self.plan.service}", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float) -> bool:
        """Wait for the thread (after ``stop`` is set); whether it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def summary(self) -> str:
        """One line: ``rollout payment v1 -> v2: rolled back to v1 at 10% after 6.2s: ...``."""
        return f"rollout {self.name}: {self.result or 'still running when meshpy up stopped'}"

    # --- the thread ---------------------------------------------------------------------

    def _narrate(self, text: str) -> None:
        text = text.strip()
        self.status = text.split(";")[0]
        self.say(f"rollout {self.plan.service}: {text}")

    def _sleep(self, seconds: float) -> None:
        """The rollout's waits: cut short, as a Ctrl-C would, when ``meshpy up`` stops."""
        if self.stop.wait(seconds):
            raise KeyboardInterrupt

    def _end(self, result: str) -> None:
        self.result = result
        self.status = result.split(":", maxsplit=1)[0]

    def run(self) -> None:
        """Wait, check, roll out; never raises."""
        try:
            self._run()
        except Exception as exc:  # a rollout never takes the mesh down
            self._end(f"failed: {exc}")
            self.say(f"rollout {self.plan.service}: failed: {exc}")

    def _run(self) -> None:
        plan = self.plan
        if self.stop.wait(self.after_s):
            self._end("not started: meshpy up stopped first")
            return
        mesh = self.connect()
        try:
            rollout = Rollout(plan, mesh, narrate=self._narrate, sleep=self._sleep)
            try:
                every = rollout.check()
            except (RolloutError, ApiError) as exc:  # no such version, no healthy instance
                self._end(f"not started: {exc}")
                self.say(f"rollout {plan.service}: not started: {exc}; nothing was changed")
                return
            if self.stop.is_set():
                self._end("not started: meshpy up stopped first")
                return
            if every is not None and plan.interval_s < 2 * every:
                self._narrate(
                    f"warning: sidecars report every {fmt_seconds(every)}: an interval of "
                    f"{fmt_seconds(plan.interval_s)} sees little of each step"
                )
            self._narrate(
                f"{plan.stable} -> {plan.candidate} in steps of "
                f"{','.join(map(str, plan.steps))}%, {fmt_seconds(plan.interval_s)} each"
            )
            self.outcome = outcome = rollout.run()
            self._end(_result(plan, outcome))
        finally:
            with contextlib.suppress(Exception):
                mesh.close()


def _result(plan: Plan, outcome: Outcome) -> str:
    took = fmt_seconds(round(outcome.elapsed_s, 1))
    if outcome.promoted:
        steps = len({s.weight for s in outcome.steps})
        return (
            f"promoted after {steps} step(s) in {took}: every request goes to "
            f"{plan.service}-{plan.candidate}"
        )
    if outcome.result == "interrupted":
        return (
            f"interrupted at {outcome.weight}% after {took} (meshpy up stopped): "
            f"rolled back to {plan.stable}"
        )
    return f"rolled back to {plan.stable} at {outcome.weight}% after {took}: {outcome.reason}"
