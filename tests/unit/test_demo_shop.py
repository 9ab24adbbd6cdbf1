"""The demo shop's payment: its failures are spread evenly, so every run of the demo shows them."""

from __future__ import annotations

import pytest

from meshpy.demo.shop import charger


@pytest.mark.parametrize(("rate", "every"), [(0.1, 10), (0.5, 2), (1.0, 1)])
def test_failures_are_every_nth_charge(rate: float, every: int) -> None:
    charge = charger(rate)
    statuses = [charge("", {})[0] for _ in range(10 * every)]
    failed = [i + 1 for i, status in enumerate(statuses) if status == 500]
    assert failed == list(range(every, 10 * every + 1, every))
    assert set(statuses) <= {200, 500}


def test_no_failures_without_a_rate() -> None:
    charge = charger(0.0)
    assert {charge("", {})[0] for _ in range(50)} == {200}
