"""The lease and health state machine of an instance, as pure functions (no database, no clock).

::

                 passing               threshold x failing
    register ──► starting ──────────► healthy ◄──────────────► unhealthy
                    │                   ▲      threshold x passing   │
                    └── threshold x failing ─────────────────────────┘
    drain: any state ──► draining (stays draining until deregistered or expired)
    lease expired: any state ──► unhealthy;  expired + removal grace ──► removed

- A renewal (``report``) extends the lease by the TTL and counts the reported health.
  ``starting`` becomes ``healthy`` on its first passing report (there is no earlier
  state to protect); flipping between ``healthy`` and ``unhealthy`` needs ``threshold``
  consecutive reports of the other kind, so one odd report changes nothing. A
  ``critical`` report (the app exited: no check can pass) makes it ``unhealthy`` at once.
- ``tick`` is what the reaper applies: a lease past its end makes the instance
  ``unhealthy`` (it leaves the endpoints), and one past its end plus the removal grace
  removes it. An instance that is unhealthy but still renewing is never removed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = ["Health", "Lease", "LeasePolicy", "State", "drain", "register", "report", "tick"]


class State(StrEnum):
    """Where an instance stands; only ``healthy`` instances get traffic."""

    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


class Health(StrEnum):
    """What a sidecar reports with each renewal."""

    PASSING = "passing"
    FAILING = "failing"
    CRITICAL = "critical"
    """The app is down (its process exited): unhealthy at once, whatever the threshold."""


@dataclass(frozen=True)
class LeasePolicy:
    """The numbers the machine runs on (from the server settings)."""

    ttl: timedelta
    removal_grace: timedelta
    threshold: int = 2


@dataclass(frozen=True)
class Lease:
    """The part of an instance the machine works on."""

    state: State
    passing: int
    """Consecutive passing reports, up to now."""
    failing: int
    """Consecutive failing reports, up to now."""
    expires_at: datetime


def register(now: datetime, policy: LeasePolicy) -> Lease:
    """The lease of an instance that registers at ``now``."""
    return Lease(State.STARTING, passing=0, failing=0, expires_at=now + policy.ttl)


def report(lease: Lease, health: Health, now: datetime, policy: LeasePolicy) -> Lease:
    """Renew ``lease`` at ``now`` with a health report."""
    if health is Health.PASSING:
        passing, failing = lease.passing + 1, 0
    elif health is Health.CRITICAL:
        passing, failing = 0, max(lease.failing + 1, policy.threshold)
    else:
        passing, failing = 0, lease.failing + 1
    state = lease.state
    if state is State.STARTING and passing:
        state = State.HEALTHY
    elif state in (State.STARTING, State.HEALTHY) and failing >= policy.threshold:
        state = State.UNHEALTHY
    elif state is State.UNHEALTHY and passing >= policy.threshold:
        state = State.HEALTHY
    return Lease(state, passing=passing, failing=failing, expires_at=now + policy.ttl)


def drain(lease: Lease) -> Lease:
    """Mark the instance draining: it keeps its lease but gets no new traffic."""
    return dataclasses.replace(lease, state=State.DRAINING)


def tick(lease: Lease, now: datetime, policy: LeasePolicy) -> Lease | None:
    """Apply the passing of time: the lease as of ``now``, or None when it is to be removed."""
    if now >= lease.expires_at + policy.removal_grace:
        return None
    if now >= lease.expires_at and lease.state is not State.UNHEALTHY:
        return Lease(State.UNHEALTHY, passing=0, failing=0, expires_at=lease.expires_at)
    return lease
