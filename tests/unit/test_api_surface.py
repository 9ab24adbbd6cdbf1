"""The public names of the control-plane modules stay what they are."""

from __future__ import annotations

import meshpy.api
import meshpy.api.changes
import meshpy.registry.leases


def test_public_names() -> None:
    assert meshpy.api.__all__ == ["create_app"]
    assert meshpy.api.changes.__all__ == ["ChangeFeed", "follow_postgres", "poll"]
    assert meshpy.registry.leases.__all__ == [
        "Health",
        "Lease",
        "LeasePolicy",
        "State",
        "drain",
        "register",
        "report",
        "tick",
    ]
