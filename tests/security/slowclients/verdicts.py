"""The verdicts on a measurement: the benign client's record, the target's memory and cuts."""

from __future__ import annotations

from dataclasses import dataclass

from tests.security.slowclients.common import percentile


def success_ratio(ok: int, sent: int) -> float:
    """Share of requests that succeeded; 1.0 when none were sent."""
    return ok / sent if sent else 1.0


def benign_problems(ok: int, sent: int, min_ratio: float, min_sent: int) -> list[str]:
    """What is wrong with the benign client's record: too few requests, or too many failed."""
    problems = []
    if sent < min_sent:
        problems.append(f"only {sent} benign requests were sent (expected at least {min_sent})")
    ratio = success_ratio(ok, sent)
    if ratio < min_ratio:
        problems.append(
            f"benign success {ratio:.2%} ({sent - ok} of {sent} failed) is under {min_ratio:.2%}"
        )
    return problems


def rss_problems(
    start_kb: int, peak_kb: int, after_kb: int, *, ceiling_kb: int, slack_kb: int
) -> list[str]:
    """What is wrong with the target's memory: over `ceiling_kb` at some point, or not back
    within `slack_kb` of where it started once the attack was over."""
    problems = []
    if peak_kb > ceiling_kb:
        problems.append(f"RSS peaked at {peak_kb / 1024:.1f} MiB (limit {ceiling_kb / 1024:.0f})")
    if after_kb > start_kb + slack_kb:
        problems.append(
            f"RSS after the attack {after_kb / 1024:.1f} MiB, more than "
            f"{slack_kb / 1024:.0f} MiB over the {start_kb / 1024:.1f} MiB it started at"
        )
    return problems


@dataclass(frozen=True)
class CutWindow:
    """When a connection held by a slow client should be cut: `timeout_s` after it was
    opened, give or take the scheduling and sampling delays."""

    timeout_s: float
    early_s: float = 0.5
    late_s: float = 2.0
    min_share: float = 0.95

    def in_time(self, cut_after_s: float) -> bool:
        return self.timeout_s - self.early_s <= cut_after_s <= self.timeout_s + self.late_s


def cut_problems(
    connections: list[tuple[float, float | None, str]], attack_s: float, window: CutWindow
) -> list[str]:
    """Whether the target cut the attack's connections after about its timeout.

    `connections` are (opened at, cut after or None, how) in seconds from the attack's
    start. Those opened early enough that the timeout and the lateness allowed had passed
    before the attack ended are judged: at least `min_share` of them must have been cut
    within the window.
    """
    latest_open = attack_s - window.timeout_s - window.late_s
    judged = [(opened, cut) for opened, cut, _ in connections if opened <= latest_open]
    if not judged:
        return [f"no connection was open long enough to judge (attack of {attack_s:g} s)"]
    in_time = [cut for _, cut in judged if cut is not None and window.in_time(cut)]
    share = len(in_time) / len(judged)
    if share >= window.min_share:
        return []
    cuts = sorted(cut for _, cut in judged if cut is not None)
    median = f"{percentile(cuts, 0.5):.2f} s" if cuts else "-"
    return [
        f"{len(in_time)} of {len(judged)} connections ({share:.0%}) were cut within "
        f"{window.timeout_s - window.early_s:g}-{window.timeout_s + window.late_s:g} s "
        f"(needed {window.min_share:.0%}); not cut at all: {len(judged) - len(cuts)}, "
        f"median time to cut {median}"
    ]
