"""The CA's state and root rotation as pure functions of it and the time (no files here).

A CA has generations, each a root and the intermediate it signed. Normally one is
``active``: its root is the whole trust bundle and its intermediate signs. A rotation from
generation A to a new generation B goes through two phases, then ends::

    started_at ── trust-new-root ──► switch_at ── sign-with-new ──► complete_at ── stable
    bundle: A + B, A signs           bundle: B + A, B signs          bundle: B, B signs

- ``switch_at`` = start + one leaf lifetime. Sidecars renew at about 2/3 of their
  lifetime and get the bundle with every leaf, so by then each one trusts B's root,
  and a leaf signed by B is accepted everywhere.
- ``complete_at`` = switch + one leaf lifetime + clock skew: the last leaf A signed has
  expired, so A's root leaves the bundle. A leaf A signs is never made to outlive it.

The phase is computed from the stored times on each use; nothing needs to run at them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from meshpy.errors import MeshpyError

__all__ = [
    "Generation",
    "Phase",
    "RootState",
    "Rotation",
    "RotationError",
    "State",
    "View",
    "plan",
    "view",
]


class Phase(StrEnum):
    """Where a rotation stands."""

    STABLE = "stable"
    TRUST_NEW_ROOT = "trust-new-root"
    SIGN_WITH_NEW = "sign-with-new"


class RootState(StrEnum):
    """A root's part in the trust bundle."""

    ACTIVE = "active"
    """Trusted, and its intermediate signs."""
    NEXT = "next"
    """Trusted ahead of signing, during the first phase of a rotation."""
    RETIRING = "retiring"
    """Trusted until the leaves its intermediate signed have expired."""


class RotationError(MeshpyError):
    """A rotation cannot start now; ``str()`` says why."""


@dataclass(frozen=True)
class Generation:
    """One root and its intermediate, kept in ``ca/g<id>/``."""

    id: int
    created_at: datetime
    source: str
    """``generated``, ``root-imported`` (the user's root and key) or ``intermediate-imported``
    (the user's intermediate and key, signed by a root whose key meshpy never sees)."""

    @property
    def root_key_held(self) -> bool:
        """Whether meshpy has this generation's root key."""
        return self.source != "intermediate-imported"


@dataclass(frozen=True)
class Rotation:
    """A rotation from one generation to the next, and when its phases begin."""

    from_generation: int
    to_generation: int
    started_at: datetime
    switch_at: datetime
    complete_at: datetime


@dataclass(frozen=True)
class State:
    """What ``ca/ca.json`` records."""

    trust_domain: str
    generations: tuple[Generation, ...]
    active: int
    """The generation that was active when the last rotation (if any) started."""
    rotation: Rotation | None = None

    def generation(self, generation_id: int) -> Generation:
        """The generation with this id (KeyError if there is none)."""
        for gen in self.generations:
            if gen.id == generation_id:
                return gen
        raise KeyError(generation_id)


@dataclass(frozen=True)
class View:
    """The state as it applies at one moment."""

    phase: Phase
    signer: int
    """The generation whose intermediate signs leaves now."""
    trusted: tuple[tuple[int, RootState], ...]
    """The generations whose roots are in the trust bundle, the signer's first."""
    sign_until: datetime | None
    """A leaf signed now must expire by then (its root leaves the bundle), if set."""


def view(state: State, now: datetime) -> View:
    """Which roots are trusted and which intermediate signs at ``now``."""
    rot = state.rotation
    if rot is None or now >= rot.complete_at:
        active = state.active if rot is None else rot.to_generation
        return View(Phase.STABLE, active, ((active, RootState.ACTIVE),), None)
    old, new = rot.from_generation, rot.to_generation
    if now < rot.switch_at:
        trusted = ((old, RootState.ACTIVE), (new, RootState.NEXT))
        return View(Phase.TRUST_NEW_ROOT, old, trusted, rot.complete_at - _skew(rot))
    trusted = ((new, RootState.ACTIVE), (old, RootState.RETIRING))
    return View(Phase.SIGN_WITH_NEW, new, trusted, None)


def plan(
    state: State, new: Generation, *, now: datetime, leaf_ttl: timedelta, skew: timedelta
) -> State:
    """The state once a rotation to ``new`` has started at ``now``.

    Raises RotationError while another rotation is under way. The generation retired
    by the previous rotation is dropped: none of its leaves can still be valid.
    """
    current = view(state, now)
    rot = state.rotation
    if current.phase is not Phase.STABLE and rot is not None:
        msg = (
            f"a rotation is under way ({current.phase}): it completes at "
            f"{rot.complete_at.isoformat()}"
        )
        raise RotationError(msg)
    switch_at = now + leaf_ttl
    rotation = Rotation(
        from_generation=current.signer,
        to_generation=new.id,
        started_at=now,
        switch_at=switch_at,
        complete_at=switch_at + leaf_ttl + skew,
    )
    kept = tuple(g for g in state.generations if g.id == current.signer)
    return replace(state, generations=(*kept, new), active=current.signer, rotation=rotation)


def _skew(rot: Rotation) -> timedelta:
    """The clock-skew margin ``plan`` put between the last old leaf's end and completion."""
    leaf_ttl = rot.switch_at - rot.started_at
    return rot.complete_at - rot.switch_at - leaf_ttl
