"""The admin address a sidecar registers, from the address its listener is bound to."""

from __future__ import annotations

import pytest

from meshpy.addresses import reachable_admin


@pytest.mark.parametrize(
    ("bound", "instance", "expected"),
    [
        ("127.0.0.1:9901", "10.0.0.7", "127.0.0.1:9901"),
        ("10.0.0.7:41234", "10.0.0.7", "10.0.0.7:41234"),
        ("0.0.0.0:9901", "10.0.0.7", "10.0.0.7:9901"),
        ("0.0.0.0:9901", "fd00::7", "[fd00::7]:9901"),
        ("[::]:9901", "10.0.0.7", "10.0.0.7:9901"),
        ("[::1]:9901", "10.0.0.7", "[::1]:9901"),
    ],
)
def test_reachable_admin(bound: str, instance: str, expected: str) -> None:
    assert reachable_admin(bound, instance) == expected
