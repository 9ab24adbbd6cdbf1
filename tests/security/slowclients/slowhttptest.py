"""slowhttptest (Debian's package), the independent attacker: its command line and counts."""

from __future__ import annotations

import math
import re
import signal
import subprocess
from pathlib import Path

from tests.security.slowclients.attack import AttackPlan
from tests.security.slowclients.common import LARGE_PATH, Json

SLOWHTTPTEST_MODES = {"slow_head": "-H", "slow_body": "-B", "slow_read": "-X"}


SLOWHTTPTEST_LENGTH_FACTOR = 10
"""slowhttptest ends its slow requests itself as its test length (-l) nears, and counts
them as closed: it is given this many times the attack's length and interrupted (SIGINT)
when the attack is over, so that the connections it counts as closed are the target's."""


def slowhttptest_argv(exe: str, plan: AttackPlan, url: str, out_prefix: Path) -> list[str]:
    """slowhttptest running `plan` (its mode, connections, interval, rate) against `url`,
    writing per-second socket counts to ``out_prefix.csv``; to be interrupted after
    `plan.duration_s` (see `SLOWHTTPTEST_LENGTH_FACTOR`)."""
    length = math.ceil(plan.duration_s * SLOWHTTPTEST_LENGTH_FACTOR)
    argv = [exe, SLOWHTTPTEST_MODES[plan.kind], "-c", str(plan.connections)]
    argv += ["-l", str(length), "-i", f"{plan.interval_s:g}"]
    argv += ["-r", f"{plan.open_rate:g}", "-g", "-o", str(out_prefix), "-v", "1"]
    if plan.kind == "slow_body":
        argv += ["-s", str(plan.body_length)]
    if plan.kind == "slow_read":
        argv += ["-z", str(plan.read_bytes), "-n", f"{plan.interval_s:g}", "-k", "1"]
        url = f"{url.rstrip('/')}{LARGE_PATH}?bytes={plan.large_bytes}"
    return [*argv, "-u", url]


def parse_slowhttptest_csv(text: str) -> Json:
    """slowhttptest's per-second counts (``Seconds,Closed,Pending,Connected,Service
    Available``): the connections closed by the end, the most connected at once, and the
    share of seconds its own probe found the service available."""
    rows = []
    for line in text.strip().splitlines()[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 5 and cells[0].isdigit():
            rows.append(cells)
    if not rows:
        return {"seconds": 0, "closed": 0, "peak_connected": 0, "available_share": None}
    # The column holds the connection count when the probe got an answer (to draw it on
    # the same chart), else 0.
    available = [r[4] not in ("0", "NO") for r in rows]
    return {
        "seconds": int(rows[-1][0]),
        "closed": int(rows[-1][1]),
        "peak_connected": max(int(r[3]) for r in rows),
        "available_share": sum(available) / len(available),
    }


def parse_slowhttptest_status(output: str) -> Json:
    """What slowhttptest's output says at its end: the closed and errored connections of
    its last status report, why it exited and at which second.

    Its CSV counts only connections it saw closed; one it finds reset when it next sends
    is an error instead. When the target closes the last ones at once, it exits ("No open
    connections left") before counting them: then every connection was cut.
    """
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    found: Json = {}
    for name, key in (("closed", "closed"), ("error", "errors")):
        values = re.findall(rf"(?m)^{name}:\s+(\d+)\s*$", plain)
        if values:
            found[key] = int(values[-1])
    exit_status = re.search(r"(?m)^Exit status:\s*(.+?)\s*$", plain)
    if exit_status:
        found["exit_status"] = exit_status.group(1)
    ended = re.search(r"(?m)^Test ended on (\d+)\w* second", plain)
    if ended:
        found["ended_s"] = int(ended.group(1))
    return found


def slowhttptest_cut(status: Json, connections: int) -> int:
    """How many of its `connections` the target cut, from `parse_slowhttptest_status`."""
    if status.get("exit_status") == "No open connections left":
        return connections
    return int(status.get("closed", 0)) + int(status.get("errors", 0))


def run_slowhttptest(argv: list[str], csv: Path, output: Path, attack_s: float) -> Json:
    """Run slowhttptest (its `argv`, from `slowhttptest_argv`) for `attack_s`, interrupt it,
    and return its counts from `csv` and its `output`; stopped by its PID if it does not
    end."""
    csv.unlink(missing_ok=True)
    with output.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            proc.wait(attack_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # it writes its report and exits
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    counts = parse_slowhttptest_csv(csv.read_text() if csv.exists() else "")
    return counts | parse_slowhttptest_status(output.read_text(errors="replace"))
