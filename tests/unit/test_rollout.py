"""meshpy rollout: the histogram quantile, per-instance windows, the verdicts, the driver."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import typer

from meshpy.cli.rollout import parse_rate, parse_steps
from meshpy.rollout import (
    Counters,
    Plan,
    Rollout,
    RolloutError,
    Thresholds,
    Verdict,
    counters,
    decide,
    histogram_quantile,
    window,
)

INF = math.inf
GATE = Thresholds(max_error_rate=0.01, max_p99=0.25, min_requests=10)


# --- histogram_quantile ------------------------------------------------------------------


def test_quantile_interpolates_within_the_bucket_like_prometheus() -> None:
    # 100 observations: 50 <= 0.1 s, 40 in (0.1, 0.2], 10 in (0.2, 0.4].
    buckets = [(0.1, 50), (0.2, 90), (0.4, 100), (INF, 100)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.15)  # 20 of 40 into (0.1, 0.2]
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.38)  # 9 of 10 into (0.2, 0.4]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # the first bucket from 0
    assert histogram_quantile(1.0, buckets) == pytest.approx(0.4)


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, [(0.1, 10), (0.5, 90), (INF, 100)]) == 0.5


def test_quantile_takes_buckets_in_any_order_and_smooths_non_monotonic_counts() -> None:
    assert histogram_quantile(0.5, [(INF, 4), (0.2, 4), (0.1, 2)]) == pytest.approx(0.1)
    # A bucket scraped a moment earlier than the next may count fewer: taken as the max.
    assert histogram_quantile(0.5, [(0.1, 3), (0.2, 2), (INF, 4)]) == pytest.approx(2 / 30)


@pytest.mark.parametrize(
    "buckets",
    [
        [],
        [(INF, 10)],  # one bucket: no bound to speak of
        [(0.1, 5), (0.2, 10)],  # no +Inf bucket
        [(0.1, 0), (INF, 0)],  # no observations
    ],
)
def test_quantile_is_none_when_prometheus_says_nan(buckets: list[tuple[float, float]]) -> None:
    assert histogram_quantile(0.99, buckets) is None


def test_quantile_outside_zero_to_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram_quantile(1.5, [(0.1, 1), (INF, 1)])


# --- windows and decisions -----------------------------------------------------------------


def _counts(ok: int, errors: int = 0, *, slow: int = 0, started: str = "t0") -> Counters:
    """``ok + errors`` requests, all under 10 ms but ``slow`` of them in (0.5 s, 1 s]."""
    total = ok + errors
    fast = total - slow
    buckets = {"0.01": fast, "0.25": fast, "0.5": fast, "1.0": total, "+Inf": total}
    return Counters(started, {"2xx": ok, "5xx": errors}, buckets)


def test_window_takes_per_instance_differences() -> None:
    before = {"a": _counts(100, 1), "b": _counts(50)}
    after = {"a": _counts(180, 3), "b": _counts(70)}
    seen = window(before, after)
    assert (seen.requests, seen.errors, seen.resets) == (102, 2, 0)
    assert dict(seen.buckets)[INF] == 102
    assert seen.error_rate == pytest.approx(2 / 102)


def test_a_restarted_sidecar_counts_from_zero_never_negative() -> None:
    before = {"a": _counts(1000, 10), "b": _counts(50)}
    # a restarted (new started_at): its 20 new requests count, not 20 - 1010.
    after = {"a": _counts(20, started="t1"), "b": _counts(60)}
    seen = window(before, after)
    assert (seen.requests, seen.errors, seen.resets) == (30, 0, 1)
    # Same started_at but a counter went down (a sidecar that lost its state): a reset too.
    seen = window({"a": _counts(1000, 10)}, {"a": _counts(5, 1)})
    assert (seen.requests, seen.errors, seen.resets) == (6, 1, 1)
    assert all(count >= 0 for _, count in seen.buckets)


def test_new_instances_count_in_full_and_leaving_ones_take_their_counts() -> None:
    seen = window({"gone": _counts(500, 50)}, {"new": _counts(12, 1)})
    assert (seen.requests, seen.errors) == (13, 1)


def test_healthy_candidate_is_promoted() -> None:
    decision = decide({"a": _counts(0)}, {"a": _counts(200, 1)}, GATE)
    assert decision.verdict is Verdict.PROMOTE
    assert decision.reason.startswith("error rate 0.5% (1 of 201) <= 1%, p99 ")


def test_errors_over_the_rate_roll_back() -> None:
    decision = decide({"a": _counts(0)}, {"a": _counts(90, 10)}, GATE)
    assert decision.verdict is Verdict.ROLLBACK
    assert decision.reason == "error rate 10% (10 of 100) > 1%"


def test_a_slow_p99_rolls_back() -> None:
    decision = decide({"a": _counts(0)}, {"a": _counts(100, slow=5)}, GATE)
    assert decision.verdict is Verdict.ROLLBACK
    assert decision.reason.startswith("p99 ")
    assert decision.reason.endswith("ms > 250ms")
    p99 = decision.window.p99
    assert p99 is not None
    assert 0.5 < p99 <= 1.0


def test_both_failures_are_named() -> None:
    decision = decide({}, {"a": _counts(50, 50, slow=50)}, GATE)
    assert decision.verdict is Verdict.ROLLBACK
    assert "error rate 50%" in decision.reason
    assert "; p99 " in decision.reason


@pytest.mark.parametrize(("before", "after"), [(0, 0), (100, 100), (100, 109)])
def test_too_few_requests_hold(before: int, after: int) -> None:
    decision = decide({"a": _counts(before)}, {"a": _counts(after)}, GATE)
    assert decision.verdict is Verdict.HOLD
    assert decision.reason.startswith("no traffic: ")


def test_without_a_histogram_p99_is_not_judged() -> None:
    plain = Counters("t0", {"2xx": 100})
    decision = decide({}, {"a": plain}, GATE)
    assert decision.verdict is Verdict.PROMOTE
    assert "p99 unknown" in decision.reason


def test_counters_read_the_stats_answer() -> None:
    answer = {
        "instances": [
            {
                "id": "i1",
                "started_at": "2026-12-01T10:00:00Z",
                "requests": {"2xx": 3},
                "duration_buckets": {"0.1": 3, "+Inf": 3},
            },
            {"id": "i2", "started_at": None, "requests": {}, "duration_buckets": {}},
        ]
    }
    read = counters(answer)
    assert read["i1"] == Counters("2026-12-01T10:00:00Z", {"2xx": 3}, {"0.1": 3, "+Inf": 3})
    assert read["i2"] == Counters()


# --- the driver ------------------------------------------------------------------------------


class FakeMesh:
    """A control plane: records applied routes; the candidate's counters grow by ``traffic``
    at each sleep (requests, errors), as a function of the weight in force."""

    def __init__(self, traffic: Callable[[int], tuple[int, int]]) -> None:
        self.traffic = traffic
        self.weight = 0
        self.ok = self.errors = 0
        self.applied: list[dict[str, Any]] = []
        self.healthy = {"v1": True, "v2": True}

    def apply(self, *resources: Any) -> None:
        for res in resources:
            refs = res.to_document()["spec"]["rules"][0]["backendRefs"]
            weights = {ref["name"]: ref.get("weight", 1) for ref in refs}
            self.applied.append(weights)
            total = sum(weights.values())
            self.weight = round(100 * weights.get("payment-v2", 0) / total)

    def stats(
        self, service: str, *, version: str | None = None, namespace: str | None = None
    ) -> dict[str, Any]:
        assert (service, namespace) == ("payment", "default")
        state = "healthy" if self.healthy.get(version or "", True) else "unhealthy"
        total = self.ok + self.errors
        item = {
            "id": "v2-1",
            "version": version,
            "state": state,
            "started_at": "t0",
            "requests": {"2xx": self.ok, "5xx": self.errors},
            "duration_buckets": {"0.01": total, "+Inf": total},
        }
        return {"reported_every_s": 1.0, "instances": [item]}

    def sleep(self, _: float) -> None:
        ok, errors = self.traffic(self.weight)
        self.ok += ok
        self.errors += errors


def _plan(**overrides: Any) -> Plan:
    values: dict[str, Any] = {
        "service": "payment",
        "candidate": "v2",
        "stable": "v1",
        "steps": [10, 50, 100],
        "interval_s": 30.0,
        "thresholds": GATE,
        "max_holds": 2,
    } | overrides
    return Plan(**values)


def _run(mesh: FakeMesh, **overrides: Any) -> tuple[Any, list[str]]:
    lines: list[str] = []
    outcome = Rollout(_plan(**overrides), mesh, narrate=lines.append, sleep=mesh.sleep).run()
    return outcome, lines


ALL_V1 = {"payment-v1": 1}
ALL_V2 = {"payment-v2": 1}


def test_a_healthy_candidate_goes_through_every_step_to_all_traffic() -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))
    outcome, lines = _run(mesh)
    assert outcome.promoted
    assert [s.weight for s in outcome.steps] == [10, 50, 100]
    assert mesh.applied == [
        {"payment-v1": 90, "payment-v2": 10},
        {"payment-v1": 50, "payment-v2": 50},
        ALL_V2,
    ]
    assert lines[0].startswith("step 1/3: 10% of payment to v2, 90% to v1")
    assert lines[-1].startswith("promoted: ")


def test_steps_short_of_100_end_with_all_traffic_to_the_candidate() -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))
    outcome, _ = _run(mesh, steps=[20, 60])
    assert outcome.promoted
    assert mesh.applied[-1] == ALL_V2


def test_a_failing_candidate_is_rolled_back_at_once() -> None:
    # 10% of its requests fail once it gets 50% of the traffic.
    mesh = FakeMesh(lambda weight: (weight, weight // 10 if weight >= 50 else 0))
    outcome, lines = _run(mesh)
    assert (outcome.result, outcome.weight) == ("rolled back", 50)
    assert outcome.reason == "error rate 9.09% (5 of 55) > 1%"
    assert mesh.applied[-1] == ALL_V1
    assert len(mesh.applied) == 3  # 10%, 50%, then back: 100% was never applied
    assert "  50%: failed: error rate 9.09% (5 of 55) > 1%" in lines


def test_no_traffic_holds_then_rolls_back() -> None:
    mesh = FakeMesh(lambda _: (0, 0))
    outcome, lines = _run(mesh, max_holds=2)
    assert (outcome.result, outcome.weight) == ("rolled back", 10)
    assert outcome.reason.startswith("no traffic: 0 request(s)")
    assert outcome.reason.endswith("after 3 interval(s)")
    assert len(outcome.steps) == 3  # held twice, then gave up
    assert sum("holding" in line for line in lines) == 2
    assert mesh.applied[-1] == ALL_V1


def test_held_intervals_add_up_to_a_verdict() -> None:
    # 4 requests an interval: the 10 needed come after three intervals.
    mesh = FakeMesh(lambda _: (4, 0))
    outcome, _ = _run(mesh, steps=[100], max_holds=3)
    assert outcome.promoted
    assert [s.decision.verdict for s in outcome.steps] == ["hold", "hold", "promote"]
    assert outcome.steps[-1].decision.window.requests == 12


def test_ctrl_c_rolls_back() -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))
    calls = 0

    def sleep(seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        mesh.sleep(seconds)

    outcome = Rollout(_plan(), mesh, sleep=sleep).run()
    assert (outcome.result, outcome.weight, outcome.promoted) == ("interrupted", 50, False)
    assert mesh.applied[-1] == ALL_V1


def test_an_api_error_half_way_rolls_back_and_is_raised() -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))
    real_stats = mesh.stats
    reads = 0

    def flaky(service: str, **kwargs: Any) -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if reads == 3:
            raise RuntimeError("control plane gone")
        return real_stats(service, **kwargs)

    mesh.stats = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="gone"):
        Rollout(_plan(), mesh, sleep=mesh.sleep).run()
    assert mesh.applied[-1] == ALL_V1


def test_check_needs_a_healthy_instance_of_both_versions() -> None:
    mesh = FakeMesh(lambda weight: (weight, 0))
    assert Rollout(_plan(), mesh).check() == 1.0
    mesh.healthy["v1"] = False
    with pytest.raises(RolloutError, match="payment-v1 has no healthy instance"):
        Rollout(_plan(), mesh).check()
    assert mesh.applied == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": []}, "at least one step"),
        ({"steps": [0, 50]}, "from 1 to 100"),
        ({"steps": [50, 50]}, "must increase"),
        ({"stable": "v2"}, "both 'v2'"),
    ],
)
def test_bad_plans_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _plan(**overrides)


# --- the CLI's option parsing ----------------------------------------------------------------


def test_steps_and_rates_parse() -> None:
    assert parse_steps("5,25,50,100") == [5, 25, 50, 100]
    assert parse_steps("10, 100") == [10, 100]
    assert parse_rate("1%") == pytest.approx(0.01)
    assert parse_rate("0.5%") == pytest.approx(0.005)
    assert parse_rate("0.02") == pytest.approx(0.02)
    for bad in ("5,x", "0,50", "50,20", "101", ""):
        with pytest.raises(typer.BadParameter):
            parse_steps(bad)
    for bad in ("5", "-1%", "lots", "200%"):
        with pytest.raises(typer.BadParameter):
            parse_rate(bad)
