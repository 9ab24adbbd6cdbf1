"""The command line the proxy benchmarks share: wrk and fortio settings, cores, quick runs."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from types import FrameType

from harness.baseline import BASELINE
from harness.measure import Settings


def load_parser(
    description: str,
    targets: Sequence[str],
    *,
    rounds: str,
    cpu: str,
    readme: str,
    keep: str,
    baseline: bool = False,
) -> argparse.ArgumentParser:
    """The options every proxy benchmark takes (targets, wrk and fortio settings, cores,
    quick runs, README and temporary files, and ``--baseline`` for a script that runs
    another build); a script adds its own after these."""
    p = argparse.ArgumentParser(description=description)
    add = p.add_argument
    add("--proxies", default=",".join(targets), help="comma-separated subset of %(default)s")
    add("--rounds", type=int, default=3, help=rounds)
    add("--duration", type=float, default=10.0, help="seconds per wrk round")
    add("--warmup", type=float, default=2.0, help="seconds of warm-up load")
    add("--latency-duration", type=float, default=15.0, help="seconds at the fixed rate")
    add("--rate", type=int, default=2000, help="fixed rate for latency, req/s")
    add("--connections", type=int, default=50, help="wrk connections")
    add("--latency-connections", type=int, default=16, help="fortio connections")
    add("--proxy-cpu", type=int, default=0, help=cpu)
    add("--load-cpu", type=int, default=1, help="core for backend and load")
    add_max_wait_idle(p, "measurement")
    if baseline:
        add(
            "--baseline",
            metavar="MESHPY",
            help="another build's meshpy executable, run beside this one (same configs) as "
            f"the target {BASELINE!r}, to measure what a change costs",
        )
    add("--quick", action="store_true", help="smoke test: 1 round, short runs")
    add("--write-readme", action="store_true", help=readme)
    add("--keep-tmp", action="store_true", help=keep)
    return p


def add_max_wait_idle(p: argparse.ArgumentParser, before_each: str) -> None:
    p.add_argument(
        "--max-wait-idle",
        type=float,
        default=30.0,
        help=f"seconds to wait, before each {before_each}, for other load on the machine to stop",
    )


def names(value: str, known: Sequence[str], p: argparse.ArgumentParser, what: str) -> list[str]:
    """The comma-separated `value` as a list; an error if it names something not `known`."""
    chosen = [x.strip() for x in value.split(",") if x.strip()]
    unknown = set(chosen) - set(known)
    if unknown:
        p.error(f"unknown {what}: {', '.join(sorted(unknown))}")
    return chosen


def parse_load_args(
    p: argparse.ArgumentParser, argv: list[str] | None, targets: Sequence[str]
) -> argparse.Namespace:
    """Parses `argv` with a `load_parser`: a quick run is one round of 5 s measurements,
    and `--proxies` becomes a list of known targets."""
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.latency_duration = 1, 5.0, 1.0, 5.0
    baseline = getattr(args, "baseline", None)
    known = [*targets, BASELINE] if baseline else list(targets)
    args.proxies = names(args.proxies, known, p, "proxies")
    if baseline and BASELINE not in args.proxies:
        args.proxies.append(BASELINE)
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    """The wrk and fortio settings of parsed `load_parser` options."""
    return Settings(
        rounds=args.rounds,
        wrk_seconds=args.duration,
        warmup_seconds=args.warmup,
        latency_seconds=args.latency_duration,
        rate=args.rate,
        connections=args.connections,
        latency_connections=args.latency_connections,
        proxy_cpu=args.proxy_cpu,
        load_cpu=args.load_cpu,
        max_wait_idle=args.max_wait_idle,
    )


def on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so that `finally` blocks stop what the run started."""
    signal.signal(signal.SIGTERM, on_sigterm)
