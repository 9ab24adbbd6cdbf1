"""Where a run's results go: standard output, a JSON file in benches/results/, the README."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from harness.common import Json, log
from harness.paths import README, REPO, RESULTS_DIR


def write_readme(section: str, start: str, end: str, heading: str) -> None:
    """Replace the text between the markers `start` and `end` in the README.

    Without the markers, a `heading` section holding them is appended first.
    """
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if start not in text or end not in text:
        text = text.rstrip() + f"\n\n## {heading}\n\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    README.write_text(f"{before}{start}\n{section}\n{end}{after}")


def save_json(results: dict[str, Json], meta: Json, prefix: str) -> Path:
    """Writes one run's results to ``benches/results/<prefix>-<time>.json``."""
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"{prefix}-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    return out


def publish(
    text: str,
    results: dict[str, Json],
    meta: Json,
    prefix: str,
    readme: tuple[str, str, str] | None,
) -> int:
    """Print the report, save the JSON and, if `readme` gives (start marker, end marker,
    heading), rewrite that README section; the exit status: 1 if a target failed."""
    print(text)
    log(f"wrote {save_json(results, meta, prefix).relative_to(REPO)}")
    if readme:
        write_readme(text, *readme)
        log(f"updated {README.relative_to(REPO)}")
    return 1 if any("error" in r for r in results.values()) else 0
