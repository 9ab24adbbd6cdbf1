"""The log line, quiet subprocess runs and the regex helper every harness module uses."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

Json = dict[str, Any]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run_quiet(argv: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)


def first_match(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    if m:
        return m.group(1)
    lines = text.strip().splitlines()
    return lines[0] if lines else "?"
