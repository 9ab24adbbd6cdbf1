"""The address line of `meshpy proxy run` is printed and parsed the same way."""

from __future__ import annotations

import pytest

from meshpy.proxyrun import format_addresses, parse_addresses


def test_admin_comes_first() -> None:
    line = format_addresses({"web": "127.0.0.1:8000", "admin": "127.0.0.1:9901", "db": "[::1]:5"})
    assert line == "admin 127.0.0.1:9901, web 127.0.0.1:8000, db [::1]:5"


def test_round_trip() -> None:
    addresses = {"admin": "127.0.0.1:9901", "web.v2": "127.0.0.1:8000", "tcp_1": "[::1]:6000"}
    assert parse_addresses(f"meshpy proxy: {format_addresses(addresses)}\n") == addresses


@pytest.mark.parametrize(
    "line",
    [
        "meshpy proxy: applied version 7",
        "meshpy proxy: draining for up to 10s",
        "meshpy proxy: stopped",
        "meshpy proxy: no listeners",
        "error: proxy.yaml: clusters[0].lb: unknown variant",
        "meshpy proxy: web 127.0.0.1:8000, ",
    ],
)
def test_other_lines_are_not_addresses(line: str) -> None:
    assert parse_addresses(line) is None
