"""Durations are parsed and printed the way the Rust core (humantime) reads them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meshpy.durations import (
    approximate_duration,
    format_duration,
    parse_duration,
    parse_seconds,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("15s", timedelta(seconds=15)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1m30s", timedelta(seconds=90)),
        ("1m 30s", timedelta(seconds=90)),
        (" 2s ", timedelta(seconds=2)),
        ("0ms", timedelta(0)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "s", "1.5s", "-1s", "15 sec", "1d", "15s!", "x15s"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(seconds=15), "15s"),
        (timedelta(seconds=300), "5m"),
        (timedelta(seconds=90), "90s"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=1), "24h"),
        (timedelta(0), "0ms"),
    ],
)
def test_format(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected
    assert parse_duration(expected) == value


@pytest.mark.parametrize("value", [timedelta(microseconds=1500), timedelta(seconds=-1)])
def test_format_rejects(value: timedelta) -> None:
    with pytest.raises(ValueError, match="whole, non-negative"):
        format_duration(value)


@pytest.mark.parametrize(
    ("text", "seconds"), [("10", 10.0), ("0.5", 0.5), ("500ms", 0.5), ("1m30s", 90.0)]
)
def test_parse_seconds_takes_numbers_and_durations(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


def test_parse_seconds_refuses_other_text() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_seconds("soon")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0.0s"),
        (timedelta(milliseconds=350), "0.3s"),
        (timedelta(seconds=9.99), "9.9s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=125), "2m5s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(hours=1, minutes=59, seconds=59), "1h59m"),
        (timedelta(hours=4, minutes=48), "4h48m"),
        (timedelta(days=1), "1d"),
        (timedelta(days=1, minutes=59), "1d"),  # two adjacent units at most
        (timedelta(days=364, hours=23, minutes=59), "364d23h"),
        (-timedelta(seconds=45), "45s"),
    ],
)
def test_approximate(value: timedelta, expected: str) -> None:
    assert approximate_duration(value) == expected
