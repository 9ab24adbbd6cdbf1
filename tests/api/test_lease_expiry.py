"""Leases with short TTLs: an instance that stops renewing leaves the endpoints within
TTL + one renewal interval, and is removed after the grace; one that renews stays."""

from __future__ import annotations

import threading
import time

import pytest

from tests.api.conftest import StartServer

TTL, RENEW, GRACE, REAPER = 1.5, 0.5, 1.5, 0.1


@pytest.mark.slow
def test_expiry_then_removal(start_server: StartServer) -> None:
    api = start_server(
        lease_ttl=TTL, renew_every=RENEW, removal_grace=GRACE, reaper_interval=REAPER
    )
    silent = api.register("cart", address="10.0.0.1")
    alive = api.register("cart", address="10.0.0.2")
    assert alive["renew_every_s"] == RENEW
    lease = "/api/v1/namespaces/default/services/cart/instances/{}/lease"
    stop = threading.Event()
    renewer = api.client(admin=True)

    def keep_alive() -> None:
        while not stop.wait(RENEW):
            renewer.put(lease.format(alive["id"]), json={"health": "passing"})

    renewed_at = time.monotonic()
    for reg in (silent, alive):
        assert api.admin.put(lease.format(reg["id"]), json={"health": "passing"}).status_code == 200
    thread = threading.Thread(target=keep_alive, daemon=True)
    thread.start()
    try:
        states: dict[str, str] = {}
        unhealthy_at = removed_at = None
        deadline = renewed_at + TTL + GRACE + 5
        while time.monotonic() < deadline and removed_at is None:
            endpoints = api.admin.get("/api/v1/namespaces/default/services/cart").json()[
                "endpoints"
            ]
            states = {e["id"]: e["state"] for e in endpoints}
            now = time.monotonic()
            if unhealthy_at is None and states.get(silent["id"]) == "unhealthy":
                unhealthy_at = now
            if silent["id"] not in states:
                removed_at = now
            assert states[alive["id"]] == "healthy"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    assert unhealthy_at is not None, states
    assert removed_at is not None, states
    assert TTL * 0.9 <= unhealthy_at - renewed_at <= TTL + RENEW
    assert TTL + GRACE <= removed_at - renewed_at + 0.1 <= TTL + GRACE + RENEW + 0.5
    gone = api.admin.put(lease.format(silent["id"]), json={"health": "passing"})
    assert gone.status_code == 404  # the sidecar must register again
