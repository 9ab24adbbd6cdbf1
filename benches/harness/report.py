"""Markdown for a run's results: number formats, tables, the heading, goals and notes."""

from __future__ import annotations

import statistics

from harness.common import Json
from harness.loadgen import wrk_errors
from harness.noise import NOISY_CORES

NOT_SATURATED = 0.90  # proxy core share below which the proxy was not the bottleneck


def fmt(v: float | None, digits: int = 0) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def pct(share: float | None) -> str:
    return fmt(share * 100 if share is not None else None)


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = [head, ["---"] * len(head), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def failed_row(name: str, r: Json, blanks: int) -> list[str]:
    """A table row for a target that failed: the first line of its error, then blanks."""
    return [name, "failed: " + r["error"].splitlines()[0]] + [""] * blanks


def flagged(count: int) -> str:
    """A count of errors: "0", or the count marked (!)."""
    return f"{count} (!)" if count else "0"


def rate_cell(lat: Json) -> str:
    """The rate fortio achieved, marked (!) if it did not sustain the fixed rate."""
    return fmt(lat["actual_rate"]) + ("" if sustained(lat) else " (!)")


def heading(meta: Json) -> list[str]:
    """The report's first lines: when and on what it ran, and the versions."""
    m = meta["machine"]
    return [
        f"Run on {meta['date']}: {m['cpu_model']} ({m['cpus']} CPUs), {m['memory']} RAM, "
        f"Linux {m['kernel']}, {m['os']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
    ]


def sustained(lat: Json) -> bool:
    return bool(lat["errors"] == 0 and lat["actual_rate"] >= 0.98 * lat["target_rate"])


def ok_runs(results: dict[str, Json]) -> dict[str, Json]:
    return {name: r for name, r in results.items() if "error" not in r}


def direct_run(results: dict[str, Json]) -> Json | None:
    """The direct run's results, if it ran and did not fail."""
    direct = results.get("direct")
    return direct if direct and "error" not in direct else None


def added(r: Json, direct: Json | None, key: str) -> float | None:
    """What the path adds to the direct run's latency percentile `key`."""
    return r["latency"][key] - direct["latency"][key] if direct else None


def notes(results: dict[str, Json]) -> list[str]:
    """What a reader should know about the wrk and fortio runs: errors, rates not kept, a
    proxy that was not the bottleneck, other load on the machine, rounds that differ."""
    out = []
    for name, r in results.items():
        if "error" in r:
            out.append(f"{name} failed: {r['error'].splitlines()[0]}")
            continue
        bad = [f"round {i + 1}: {x['non_2xx']} non-2xx, socket errors {x['socket_errors']}"
               for i, x in enumerate(r["rounds"]) if wrk_errors(x)]  # fmt: skip
        if bad:
            out.append(f"{name}: wrk reported errors ({'; '.join(bad)})")
        lat = r["latency"]
        if not sustained(lat):
            out.append(
                f"{name}: did not sustain {lat['target_rate']} req/s "
                f"(achieved {lat['actual_rate']:.0f}, {lat['errors']} errors)"
            )
        util = r.get("proxy_core_util")
        if util is not None and util < NOT_SATURATED:
            out.append(
                f"{name}: used {util * 100:.0f}% of its core at max load, so the proxy was "
                "not the bottleneck (the shared backend/load core or other processes were); "
                "its req/s is a lower bound"
            )
        if r["foreign_cores"] > NOISY_CORES:
            out.append(
                f"{name}: other processes used up to {r['foreign_cores']:.2f} cores during "
                "its measurements; its numbers may be skewed"
            )
        rps = [x["rps"] for x in r["rounds"]]
        if len(rps) > 1 and (max(rps) - min(rps)) / statistics.median(rps) > 0.10:
            spread = ", ".join(f"{v:.0f}" for v in rps)
            out.append(f"{name}: wrk rounds differ by more than 10% ({spread} req/s)")
    return out


def goal_section(checks: list[tuple[str, str, bool]]) -> list[str]:
    """A table of (goal, measured, met) rows, as report lines; none without checks."""
    if not checks:
        return []
    rows = [[goal, value, "yes" if met else "no"] for goal, value, met in checks]
    return ["", table(["meshpy goal", "measured", "met"], rows)]


def notes_section(found: list[str], what: str, meta: Json | None = None) -> list[str]:
    """The report's closing lines: the notes (with a warning first when `meta` says the
    meshpy extension has debug info), or that every `what` kept the fixed rate."""
    if meta is not None and meta.get("meshpy_build") == "debug info":
        found = [
            "meshpy: its extension carries debug info, so it is likely a debug build; "
            "`make build` makes the release one",
            *found,
        ]
    if found:
        return ["", "Notes:", "", *[f"- {x}" for x in found]]
    return ["", f"No errors; every {what} sustained the fixed rate."]
