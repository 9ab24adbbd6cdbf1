"""Token buckets per join token."""

from __future__ import annotations

from meshpy.api.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=0.5, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 2.0  # one token every 2 s
    assert buckets.take("b") == 0.0  # every key has its own bucket
    clock.now += 1.5
    assert buckets.take("a") == 0.5
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    clock.now += 1000
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # refills to the burst, no more


def test_full_buckets_are_forgotten() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock, max_keys=3)
    for key in "abc":
        buckets.take(key)
    clock.now += 10  # a, b and c are full again
    buckets.take("d")
    assert buckets.take("d") == 0.0
    assert len(buckets._buckets) == 1
