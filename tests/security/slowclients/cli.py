"""The command line of the backend and of the attacker, each run in a process of its own."""

# Run as a program (`__main__.py`), the package is one of two children of a measurement:
#
#   python tests/security/slowclients backend --port P     the backend every target forwards to
#   python tests/security/slowclients attack --kind K ...  the attacking connections; prints a
#                                                          JSON report
#
# Both run in their own processes so that neither the attack nor the backend shares an
# interpreter (and its lock) with the benign client, whose latencies are measured.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.security.slowclients.attack import Attack, AttackPlan
from tests.security.slowclients.backend import serve_backend
from tests.security.slowclients.common import ATTACKS, LARGE_BYTES, raise_open_files_limit


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    backend = sub.add_parser("backend", help="serve HELLO and large bodies on 127.0.0.1")
    backend.add_argument("--port", type=int, default=0)
    backend.add_argument("--large-bytes", type=int, default=LARGE_BYTES)
    attack = sub.add_parser("attack", help="hold slow connections; print a JSON report")
    attack.add_argument("--target", required=True, help="host:port (loopback)")
    attack.add_argument("--kind", choices=ATTACKS, required=True)
    for spec in dataclasses.fields(AttackPlan):
        if spec.name != "kind":
            required = spec.default is dataclasses.MISSING
            default = None if required else spec.default
            flag = f"--{spec.name.replace('_', '-')}"
            attack.add_argument(flag, required=required, default=default)
    attack.add_argument("--out", help="write the report here instead of stdout")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    if args.command == "backend":
        raise_open_files_limit()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_backend(args.port, args.large_bytes))
        return 0
    return attack_main(args)


def attack_main(args: argparse.Namespace) -> int:
    raise_open_files_limit()
    # The annotations are strings (postponed evaluation): "str", "int" or "float".
    convert: dict[str, Callable[[Any], Any]] = {"str": str, "int": int, "float": float}
    fields = dataclasses.fields(AttackPlan)
    plan = AttackPlan(**{f.name: convert[str(f.type)](getattr(args, f.name)) for f in fields})
    host, _, port = args.target.rpartition(":")
    report = asyncio.run(Attack(host, int(port), plan).run())
    text = json.dumps(report)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0
