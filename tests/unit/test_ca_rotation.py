"""The root rotation state machine: phases, trusted roots and the signer over time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshpy.ca.rotation import (
    Generation,
    Phase,
    RootState,
    RotationError,
    State,
    plan,
    view,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(hours=24)
SKEW = timedelta(seconds=20)


def _state() -> State:
    return State("meshpy.local", (Generation(1, T0, "generated"),), active=1)


def _rotate(state: State, at: datetime, new_id: int) -> State:
    return plan(state, Generation(new_id, at, "generated"), now=at, leaf_ttl=TTL, skew=SKEW)


def test_no_rotation_is_stable() -> None:
    current = view(_state(), T0)
    assert current.phase is Phase.STABLE
    assert (current.signer, current.trusted, current.sign_until) == (
        1,
        ((1, RootState.ACTIVE),),
        None,
    )


def test_phases_of_a_rotation() -> None:
    start = T0 + timedelta(days=3)
    state = _rotate(_state(), start, 2)
    rot = state.rotation
    assert rot is not None
    assert (rot.from_generation, rot.to_generation) == (1, 2)
    assert (rot.switch_at, rot.complete_at) == (start + TTL, start + 2 * TTL + SKEW)

    phase1 = view(state, start)
    assert phase1.phase is Phase.TRUST_NEW_ROOT
    assert phase1.signer == 1
    assert phase1.trusted == ((1, RootState.ACTIVE), (2, RootState.NEXT))
    assert phase1.sign_until == start + 2 * TTL  # no old leaf outlives the old root
    assert view(state, rot.switch_at - timedelta(seconds=1)).signer == 1

    phase2 = view(state, rot.switch_at)
    assert phase2.phase is Phase.SIGN_WITH_NEW
    assert phase2.signer == 2
    assert phase2.trusted == ((2, RootState.ACTIVE), (1, RootState.RETIRING))
    assert phase2.sign_until is None
    assert view(state, rot.complete_at - timedelta(seconds=1)).phase is Phase.SIGN_WITH_NEW

    done = view(state, rot.complete_at)
    assert done.phase is Phase.STABLE
    assert (done.signer, done.trusted) == (2, ((2, RootState.ACTIVE),))


def test_one_rotation_at_a_time_and_old_generations_dropped() -> None:
    start = T0 + timedelta(days=3)
    state = _rotate(_state(), start, 2)
    for at in (start, start + TTL, start + 2 * TTL):
        with pytest.raises(RotationError, match="a rotation is under way"):
            _rotate(state, at, 3)
    later = start + 2 * TTL + SKEW
    again = _rotate(state, later, 3)
    assert [g.id for g in again.generations] == [2, 3]
    assert again.active == 2
    assert view(again, later).trusted == ((2, RootState.ACTIVE), (3, RootState.NEXT))
