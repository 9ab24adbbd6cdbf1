"""Fixtures of the identity tests: a settable clock for the CA."""

from __future__ import annotations

import pytest

from tests.identity.pki import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
