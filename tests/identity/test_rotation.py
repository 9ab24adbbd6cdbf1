"""Root rotation through the API, on a settable clock: no leaf stops verifying on the way."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.api.live import LiveServer
from tests.identity.conftest import CERTIFICATES, StartServer
from tests.identity.pki import FakeClock, certificates, make_csr, openssl_verify

TD = "meshpy.local"
CART = f"spiffe://{TD}/ns/default/sa/cart"
TTL = 60


def _issue(server: LiveServer, token: str) -> dict[str, Any]:
    csr, _ = make_csr([CART])
    response = server.client(token).post(CERTIFICATES, json={"csr": csr})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _bundle(server: LiveServer) -> dict[str, Any]:
    body: dict[str, Any] = server.client().get("/api/v1/identity/trust-bundle").json()
    return body


def _ca(server: LiveServer) -> dict[str, Any]:
    body: dict[str, Any] = server.admin.get("/api/v1/identity/ca").json()
    return body


def _issuer(leaf: dict[str, Any]) -> str:
    return certificates(leaf["certificate_chain"])[1].subject.rfc4514_string()


def _verifies(tmp_path: Path, bundle_pem: str, leaf: dict[str, Any], clock: FakeClock) -> bool:
    return (
        openssl_verify(tmp_path, bundle_pem, leaf["certificate_chain"], at=clock.now).returncode
        == 0
    )


def test_rotation_drops_no_traffic(
    start_server: StartServer, clock: FakeClock, tmp_path: Path
) -> None:
    server = start_server(cert_ttl=f"{TTL}s", cert_burst=100)
    token = server.join_token("cart")
    before = _issue(server, token)  # leaf A, before any rotation
    first = _ca(server)
    assert first["rotation"]["phase"] == "stable"
    old_root = first["roots"][0]["fingerprint_sha256"]
    old_intermediate = first["intermediate"]["subject"]

    clock.advance(10)
    rotated = server.admin.post("/api/v1/identity/ca/rotate")
    assert rotated.status_code == 200, rotated.text
    ca = rotated.json()
    rotation = ca["rotation"]
    assert rotation["phase"] == "trust-new-root"
    assert rotation["started_at"] == _iso(clock.now)
    assert rotation["signing_switch_at"] == _iso(clock.now, TTL)
    assert rotation["old_root_removed_at"] == _iso(clock.now, 2 * TTL + 20)
    assert [(r["generation"], r["state"]) for r in ca["roots"]] == [(1, "active"), (2, "next")]
    assert ca["roots"][0]["fingerprint_sha256"] == old_root
    new_root = ca["roots"][1]["fingerprint_sha256"]
    assert ca["intermediate"]["generation"] == 1  # the old intermediate keeps signing
    again = server.admin.post("/api/v1/identity/ca/rotate")
    assert again.status_code == 409
    assert "a rotation is under way (trust-new-root)" in again.json()["detail"]

    # Phase 1: both roots trusted; leaves are still signed by the old intermediate.
    clock.advance(10)
    during = _issue(server, token)  # leaf B, after the rotation started
    assert _issuer(during) == old_intermediate
    overlap = _bundle(server)
    assert [r["state"] for r in overlap["roots"]] == ["active", "next"]
    assert len(certificates(overlap["pem"])) == 2
    assert during["trust_bundle"] == overlap["pem"]
    assert _verifies(tmp_path, overlap["pem"], before, clock)
    assert _verifies(tmp_path, overlap["pem"], during, clock)
    # A leaf signed now never outlives the old root's place in the bundle.
    assert certificates(during["certificate_chain"])[0].not_valid_after_utc <= _at(
        rotation["old_root_removed_at"]
    )

    # Phase 2, one leaf lifetime after the start: the new intermediate signs.
    clock.advance(TTL - 10 + 1)
    assert clock.now > _at(rotation["signing_switch_at"])
    after = _issue(server, token)  # leaf C
    assert _issuer(after) != old_intermediate
    assert "intermediate CA 2" in _issuer(after)
    ca = _ca(server)
    assert ca["rotation"]["phase"] == "sign-with-new"
    assert [(r["generation"], r["state"]) for r in ca["roots"]] == [(2, "active"), (1, "retiring")]
    assert ca["roots"][0]["fingerprint_sha256"] == new_root
    # A sidecar still holding the bundle of phase 1 accepts the new leaves, and the
    # bundle served now still accepts the old intermediate's leaves.
    assert _verifies(tmp_path, overlap["pem"], after, clock)
    assert _verifies(tmp_path, _bundle(server)["pem"], during, clock)

    # One more leaf lifetime (and the skew margin): the old root leaves the bundle.
    clock.advance(TTL + 20)
    assert clock.now >= _at(rotation["old_root_removed_at"])
    final = _bundle(server)
    assert [(r["fingerprint_sha256"], r["state"]) for r in final["roots"]] == [(new_root, "active")]
    assert _ca(server)["rotation"]["phase"] == "stable"
    latest = _issue(server, token)
    assert latest["trust_bundle"] == final["pem"]
    assert _verifies(tmp_path, final["pem"], latest, clock)
    assert not _verifies(tmp_path, final["pem"], during, clock)  # expired, and its root gone

    # The next rotation may start; it drops the retired generation's files.
    assert (server.settings.ca_dir / "g1").is_dir()
    assert server.admin.post("/api/v1/identity/ca/rotate").status_code == 200
    assert not (server.settings.ca_dir / "g1").exists()
    assert [r["generation"] for r in _ca(server)["roots"]] == [2, 3]


def test_servers_sharing_the_ca_directory_follow_a_rotation(
    start_server: StartServer, clock: FakeClock, tmp_path: Path
) -> None:
    first = start_server(cert_ttl=f"{TTL}s")
    second = start_server(cert_ttl=f"{TTL}s", home=tmp_path / "home0")
    assert second.settings.ca_dir == first.settings.ca_dir
    assert _bundle(first) == _bundle(second)
    assert first.admin.post("/api/v1/identity/ca/rotate").status_code == 200
    assert [r["state"] for r in _bundle(second)["roots"]] == ["active", "next"]
    clock.advance(TTL + 1)
    token = second.join_token("cart")
    assert "intermediate CA 2" in _issuer(_issue(second, token))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(moment: datetime, plus: float = 0) -> str:
    return (moment + timedelta(seconds=plus)).isoformat().replace("+00:00", "Z")
