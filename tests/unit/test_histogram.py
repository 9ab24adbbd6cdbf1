"""Quantiles of a histogram at its edges: empty, in one bucket, beyond the last bound."""

from __future__ import annotations

import math

import pytest

from meshpy.stats.histogram import bucket_bound, histogram_quantile

INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.99, [], None),
        (0.99, [(0.1, 0.0), (INF, 0.0)], None),
        (0.5, [(0.1, 10.0), (INF, 10.0)], 0.05),
        (0.99, [(0.1, 1.0), (INF, 10.0)], 0.1),
        (0.5, [(0.1, 10.0)], None),
    ],
)
def test_quantile_edges(
    q: float, buckets: list[tuple[float, float]], expected: float | None
) -> None:
    assert histogram_quantile(q, buckets) == (None if expected is None else pytest.approx(expected))


def test_bucket_bound() -> None:
    assert [bucket_bound(le) for le in ("0.005", "1.0", "1e-3", "+Inf")] == [0.005, 1.0, 0.001, INF]
