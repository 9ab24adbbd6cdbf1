"""The lease/health state machine, as a table of cases (no database, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshpy.registry.leases import Health, Lease, LeasePolicy, State, drain, register, report, tick

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = LeasePolicy(ttl=timedelta(seconds=15), removal_grace=timedelta(seconds=60), threshold=2)
P, F, C = Health.PASSING, Health.FAILING, Health.CRITICAL


def run(reports: list[Health], start: State = State.STARTING) -> list[State]:
    lease = Lease(start, passing=0, failing=0, expires_at=T0 + POLICY.ttl)
    states = []
    for i, health in enumerate(reports):
        lease = report(lease, health, T0 + timedelta(seconds=i), POLICY)
        states.append(lease.state)
    return states


S, H, U, D = State.STARTING, State.HEALTHY, State.UNHEALTHY, State.DRAINING


@pytest.mark.parametrize(
    ("start", "reports", "states"),
    [
        (S, [P], [H]),  # the first passing report makes a new instance healthy
        (S, [F], [S]),
        (S, [F, F], [S, U]),
        (S, [F, P], [S, H]),
        (H, [F], [H]),  # one failure changes nothing
        (H, [F, F], [H, U]),
        (H, [F, P, F], [H, H, H]),  # not consecutive
        (U, [P], [U]),
        (U, [P, P], [U, H]),
        (U, [P, F, P, P], [U, U, U, H]),
        (D, [P, P, F, F], [D, D, D, D]),  # draining stays draining
        (H, [C], [U]),  # the app exited: at once
        (S, [C], [U]),
        (H, [F, C, P, P], [H, U, U, H]),  # and back after threshold x passing
        (D, [C], [D]),
    ],
)
def test_reports(start: State, reports: list[Health], states: list[State]) -> None:
    assert run(reports, start) == states


def test_threshold_one_flips_at_once() -> None:
    policy = LeasePolicy(ttl=timedelta(seconds=5), removal_grace=timedelta(seconds=5), threshold=1)
    lease = register(T0, policy)
    lease = report(lease, P, T0, policy)
    assert report(lease, F, T0, policy).state is State.UNHEALTHY


def test_registration_and_renewal_set_the_lease() -> None:
    lease = register(T0, POLICY)
    assert lease == Lease(State.STARTING, passing=0, failing=0, expires_at=T0 + POLICY.ttl)
    later = T0 + timedelta(seconds=7)
    renewed = report(lease, P, later, POLICY)
    assert renewed.expires_at == later + POLICY.ttl
    assert (renewed.passing, renewed.failing) == (1, 0)


@pytest.mark.parametrize(
    ("state", "seconds_after_expiry", "expected"),
    [
        (H, -1, H),  # not expired yet
        (H, 0, U),  # expired: leaves the endpoints
        (S, 0, U),
        (D, 5, U),
        (U, 30, U),  # expired and waiting for the grace
        (H, 59, U),
        (H, 60, None),  # removed after the grace
        (U, 61, None),
    ],
)
def test_tick(state: State, seconds_after_expiry: int, expected: State | None) -> None:
    expires = T0 + POLICY.ttl
    lease = Lease(state, passing=3, failing=0, expires_at=expires)
    after = tick(lease, expires + timedelta(seconds=seconds_after_expiry), POLICY)
    if expected is None:
        assert after is None
    else:
        assert after is not None
        assert after.state is expected
        assert after.expires_at == expires


def test_unhealthy_but_renewing_is_never_removed() -> None:
    lease = Lease(U, passing=0, failing=5, expires_at=T0 + POLICY.ttl)
    now = T0
    for _ in range(20):  # 20 renewals over 100 s, each failing
        now += timedelta(seconds=5)
        lease = report(lease, F, now, POLICY)
        after = tick(lease, now, POLICY)
        assert after is not None
        assert after.state is State.UNHEALTHY


def test_drain_keeps_the_lease() -> None:
    lease = Lease(H, passing=4, failing=0, expires_at=T0)
    assert drain(lease) == Lease(D, passing=4, failing=0, expires_at=T0)
