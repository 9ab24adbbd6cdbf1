"""Parse and print durations the way the Rust core writes them ("250ms", "15s", "5m", "1h")."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = [
    "DURATION_PATTERN",
    "approximate_duration",
    "format_duration",
    "parse_duration",
    "parse_seconds",
]

_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000}
_PART = re.compile(r"(\d+)\s*(ms|s|m|h)")
DURATION_PATTERN = r"^\s*(\d+\s*(ms|s|m|h)\s*)+$"
"""A regular expression for a valid duration string: one or more ``<integer><unit>`` parts."""


def parse_duration(text: str) -> timedelta:
    """Return the duration spelt by ``text``, e.g. "250ms", "15s", "5m", "1h" or "1m30s".

    Raises ValueError with a short hint for anything else.
    """
    stripped = text.strip()
    total_ms = 0
    pos = 0
    for match in _PART.finditer(stripped):
        if stripped[pos : match.start()].strip():
            break
        total_ms += int(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos == 0 or stripped[pos:].strip():
        msg = f"invalid duration {text!r}: use a number and a unit (ms, s, m, h), e.g. '15s'"
        raise ValueError(msg)
    return timedelta(milliseconds=total_ms)


def parse_seconds(text: str) -> float:
    """Return seconds from a plain number ("10", "0.5") or a duration ("500ms", "1m").

    No range check: callers bound the value as their setting needs. Raises ValueError
    (the duration's hint) for anything else.
    """
    try:
        return float(text)
    except ValueError:
        return parse_duration(text).total_seconds()


def format_duration(value: timedelta) -> str:
    """Return the shortest one-unit spelling of ``value``: 300 s gives "5m", 1.5 s gives "1500ms".

    Raises ValueError for negative values or for values finer than a millisecond.
    """
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros < 0 or micros % 1_000:
        msg = f"duration {value} is not a whole, non-negative number of milliseconds"
        raise ValueError(msg)
    ms = micros // 1_000
    for unit in ("h", "m", "s"):
        if ms and ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


_SPAN_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def approximate_duration(value: timedelta) -> str:
    """Return ``value`` for people, rounded down to two adjacent units at most: "364d5h",
    "1h59m", "45s"; under 10 s with a tenth: "0.3s". The sign is dropped."""
    seconds = abs(value.total_seconds())
    if seconds < 10:
        return f"{int(seconds * 10) / 10:.1f}s"
    left = int(seconds)
    for i, (unit, size) in enumerate(_SPAN_UNITS):
        if left >= size:
            text = f"{left // size}{unit}"
            if i + 1 < len(_SPAN_UNITS):
                next_unit, next_size = _SPAN_UNITS[i + 1]
                rest = left % size // next_size
                text += f"{rest}{next_unit}" if rest else ""
            return text
    return "0s"  # pragma: no cover - seconds >= 10 always has a unit
