"""Cumulative latency histograms: bucket bounds as Prometheus writes them, and quantiles."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["bucket_bound", "histogram_quantile"]


def bucket_bound(le: str) -> float:
    """The upper bound a bucket's ``le`` names, in seconds ("+Inf" is infinity)."""
    return math.inf if le == "+Inf" else float(le)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0..1) of a cumulative histogram, as Prometheus estimates it.

    ``buckets`` are (upper bound, cumulative count) pairs, one of them +Inf. The rank
    ``q * total`` falls in a bucket, and the answer is interpolated linearly between
    that bucket's bounds (the lowest bucket starts at 0). A rank in the +Inf bucket
    gives the highest finite bound. None (Prometheus: NaN) without a +Inf bucket, with
    fewer than two buckets, or with no observations.
    """
    if not 0.0 <= q <= 1.0:
        msg = f"a quantile is between 0 and 1, not {q}"
        raise ValueError(msg)
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    # Counts of a cumulative histogram never go down; smooth out any that do (as
    # Prometheus does for buckets scraped non-atomically).
    fixed: list[tuple[float, float]] = []
    highest = 0.0
    for bound, count in ordered:
        highest = max(highest, count)
        fixed.append((bound, highest))
    total = fixed[-1][1]
    if total <= 0:
        return None
    rank = q * total
    index = next(i for i, (_, count) in enumerate(fixed) if count >= rank)
    if index == len(fixed) - 1:
        return fixed[-2][0]
    upper, count = fixed[index]
    if index == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if index == 0 else fixed[index - 1]
    in_bucket = count - below
    if in_bucket <= 0:
        return lower
    return lower + (upper - lower) * (rank - below) / in_bucket
