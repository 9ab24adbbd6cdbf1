"""Running measurement steps over targets: started in turn, steps interleaved, failures kept."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from harness.common import Json, log
from harness.measure import Bench, Target, check_alive, summarize

Step = Callable[[Bench, Target], None]
Describe = Callable[[Exception], str]  # an error as the results keep it


def tmp_as_var(b: Bench) -> Describe:
    """An error's text with the run's temporary directory shortened to $TMP."""
    return lambda err: str(err).replace(str(b.tmp), "$TMP")


def start_targets(
    names: Sequence[str], start: Callable[[str], Target], describe: Describe = str
) -> tuple[list[Target], dict[str, str]]:
    """Start each target in turn: (those started, {name: error} of those that failed)."""
    targets: list[Target] = []
    errors: dict[str, str] = {}
    for name in names:
        try:
            targets.append(start(name))
        except RuntimeError as err:
            log(f"{name} failed: {err}")
            errors[name] = describe(err)
    return targets, errors


def guarded(
    b: Bench, errors: dict[str, str], t: Target, step: Callable[[], None], describe: Describe
) -> None:
    """Run one measurement step; a failure stops the target and is recorded."""
    if t.name in errors:
        return
    try:
        step()
        check_alive(b, t)
    except RuntimeError as err:
        log(f"{t.name} failed: {err}")
        errors[t.name] = describe(err)
        for proc in t.procs():
            if proc in b.procs.procs:
                b.procs.stop(proc)


def interleave(
    b: Bench,
    errors: dict[str, str],
    targets: Sequence[Target],
    steps: Sequence[Step],
    describe: Describe = str,
) -> None:
    """Each step on every target in turn (round 1 of each, then round 2 of each, ...), so
    that drift in the machine's speed is spread over all targets instead of one."""
    for step in steps:
        for t in targets:
            guarded(b, errors, t, partial(step, b, t), describe)


def collect(
    names: Sequence[str],
    errors: dict[str, str],
    targets: Sequence[Target],
    extra: Callable[[Target], Json] = lambda _: {},
) -> dict[str, Json]:
    """Per name, in order: its error, or its summary with what `extra` adds."""
    done = {t.name: t for t in targets}
    results: dict[str, Json] = {}
    for name in names:
        if name in errors:
            results[name] = {"error": errors[name]}
            continue
        results[name] = summarize(done[name])
        results[name].update(extra(done[name]))
    return results
