"""Another meshpy build measured beside this one (``--baseline``), and the change's cost."""

from __future__ import annotations

from harness.common import Json

BASELINE = "baseline"
"""The target name of the other build."""

MAX_COST = 0.03
"""A change may cost this share of req/s or of CPU per request (3%)."""


def baseline_checks(runs: dict[str, Json]) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) rows for this build against the baseline build, if both ran."""
    this, base = runs.get("meshpy"), runs.get(BASELINE)
    if not this or not base:
        return []
    rps = this["rps"] / base["rps"]
    cpu = this["cpu_us_per_req"] / base["cpu_us_per_req"]
    return [
        (f"req/s >= {1 - MAX_COST:.2f}x the baseline build", f"{rps:.3f}x", rps >= 1 - MAX_COST),
        (
            f"CPU per request <= {1 + MAX_COST:.2f}x the baseline build's",
            f"{cpu:.3f}x",
            cpu <= 1 + MAX_COST,
        ),
    ]
