"""Exponential backoff with jitter, for every call a sidecar retries."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delays that double from ``base`` up to ``cap``, each drawn from [½, 1] of its step.

    The jitter spreads sidecars out, so a control plane coming back is not hit by all of
    them at the same instant.
    """

    base: float = 1.0
    cap: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    _failures: int = 0

    def next(self, at_least: float = 0.0) -> float:
        """The delay before the next try after one more failure (``at_least``: Retry-After)."""
        step = min(self.cap, self.base * 2.0**self._failures)
        self._failures += 1
        return max(at_least, step * self.rng.uniform(0.5, 1.0))

    def reset(self) -> None:
        """After a success: the next failure starts from ``base`` again."""
        self._failures = 0
