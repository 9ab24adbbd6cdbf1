"""Issuing workload certificates: the happy path, every refusal, the rate limit, the records."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.api.live import LiveServer
from tests.identity.conftest import CERTIFICATES, StartServer
from tests.identity.pki import FakeClock, certificates, check_svid, make_csr, with_bad_signature

TD = "meshpy.local"
CART = f"spiffe://{TD}/ns/default/sa/cart"
PROBLEM = "application/problem+json"


def test_issue_a_conforming_svid(server: LiveServer, clock: FakeClock, tmp_path: Path) -> None:
    token = server.join_token("cart")
    instance = server.register("cart")["id"]
    csr, key = make_csr([CART])
    response = server.client(token).post(CERTIFICATES, json={"csr": csr, "instance": instance})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "identity",
        "certificate_chain",
        "trust_bundle",
        "serial",
        "not_before",
        "not_after",
    }
    assert body["identity"] == CART
    leaf, intermediate = certificates(body["certificate_chain"])
    (root,) = certificates(body["trust_bundle"])
    assert body["serial"] == f"{leaf.serial_number:032x}"
    assert leaf.not_valid_before_utc == clock.now - timedelta(seconds=20)
    assert leaf.not_valid_after_utc == clock.now + timedelta(seconds=86400)
    assert body["not_before"] == leaf.not_valid_before_utc.isoformat().replace("+00:00", "Z")
    assert body["not_after"] == leaf.not_valid_after_utc.isoformat().replace("+00:00", "Z")
    assert leaf.subject.rfc4514_string() == ""
    assert leaf.issuer == intermediate.subject
    assert intermediate.issuer == root.subject
    check_svid(
        tmp_path,
        body["certificate_chain"],
        body["trust_bundle"],
        trust_domain=TD,
        spiffe_id=CART,
        key=key,
        at=clock.now,
    )

    records = server.admin.get(CERTIFICATES).json()["items"]
    assert len(records) == 1
    record = records[0]
    assert {k: record[k] for k in ("serial", "identity", "namespace", "service", "instance")} == {
        "serial": body["serial"],
        "identity": CART,
        "namespace": "default",
        "service": "cart",
        "instance": instance,
    }
    assert record["token_id"] == token.removeprefix("mpj_").split(".")[0]
    assert (record["not_before"], record["not_after"]) == (body["not_before"], body["not_after"])
    assert record["certificate_chain"] == body["certificate_chain"]
    assert [c["serial"] for c in record["chain"]] == [
        body["serial"],
        f"{intermediate.serial_number:032x}",
    ]
    assert record["chain"][0]["issuer"] == intermediate.subject.rfc4514_string()


@pytest.mark.parametrize("kind", ["ed25519", "rsa2048", "cn"])
def test_other_acceptable_csrs(server: LiveServer, tmp_path: Path, kind: str) -> None:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | None
    key, common_name = None, None
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "rsa2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        common_name = CART
    csr, key = make_csr([CART], key=key, common_name=common_name)
    response = server.client(server.join_token("cart")).post(CERTIFICATES, json={"csr": csr})
    assert response.status_code == 201, response.text
    body = response.json()
    check_svid(
        tmp_path,
        body["certificate_chain"],
        body["trust_bundle"],
        trust_domain=TD,
        spiffe_id=CART,
        key=key,
    )
    (leaf, _) = certificates(body["certificate_chain"])
    assert leaf.subject.rfc4514_string() == ""  # the CSR's subject is never copied


def _refusals() -> list[tuple[str, str, int, str]]:
    """(case, CSR, status, text in the problem's detail)."""
    payment = f"spiffe://{TD}/ns/default/sa/payment"
    p384 = ec.generate_private_key(ec.SECP384R1())
    rsa1024 = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    good, _ = make_csr([CART])
    return [
        ("another service", make_csr([payment])[0], 403, f"allows only {CART}"),
        ("another namespace", make_csr([CART.replace("/default/", "/shop/")])[0], 403, "only"),
        ("another trust domain", make_csr([CART.replace(TD, "other.td")])[0], 403, "only"),
        ("DNS SAN", make_csr([CART], dns=["cart.default"])[0], 400, "DNS subject alternative"),
        ("IP SAN", make_csr([CART], ips=["10.0.0.1"])[0], 400, "IP subject alternative"),
        ("email SAN", make_csr([CART], emails=["a@b.c"])[0], 400, "email subject alternative"),
        ("second URI", make_csr([CART, f"{CART}/x"])[0], 400, "2 URI SANs"),
        ("no SAN", make_csr([])[0], 400, "no subject alternative name"),
        ("not SPIFFE", make_csr(["https://cart.example"])[0], 400, "is not a SPIFFE ID"),
        ("CA", make_csr([CART], ca=True)[0], 400, "asks for a CA certificate"),
        ("bad signature", with_bad_signature(good), 400, "signature does not verify"),
        ("P-384", make_csr([CART], key=p384)[0], 400, "an EC key on secp384r1"),
        ("RSA 1024", make_csr([CART], key=rsa1024)[0], 400, "an RSA key of 1024 bits"),
        ("CN", make_csr([CART], common_name="cart")[0], 400, "common name 'cart' must be"),
        ("not PEM", "hello", 400, "not a PEM certificate signing request"),
    ]


def test_refused_csrs_record_nothing(start_server: StartServer) -> None:
    server = start_server(cert_burst=100)
    client = server.client(server.join_token("cart"))
    for case, csr, status, detail in _refusals():
        response = client.post(CERTIFICATES, json={"csr": csr})
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == PROBLEM, case
        problem = response.json()
        assert detail in problem["detail"], (case, problem)
        slug = "identity-not-allowed" if status == 403 else "csr-refused"
        assert problem["type"] == f"https://meshpy.io/problems/{slug}", case
    assert server.admin.get(CERTIFICATES).json() == {"items": []}


def test_admin_token_and_bad_tokens_are_refused(server: LiveServer) -> None:
    csr, _ = make_csr([CART])
    admin = server.admin.post(CERTIFICATES, json={"csr": csr})
    assert admin.status_code == 403
    assert admin.json()["detail"].startswith("certificates are issued to join tokens")
    for client in (server.client(), server.client("mpj_nothing.secret")):
        assert client.post(CERTIFICATES, json={"csr": csr}).status_code == 401
    assert server.admin.get(CERTIFICATES).json() == {"items": []}


def test_instance_must_be_the_tokens(server: LiveServer) -> None:
    client = server.client(server.join_token("cart"))
    csr, _ = make_csr([CART])
    other = server.register("payment")["id"]
    wrong = client.post(CERTIFICATES, json={"csr": csr, "instance": other})
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == (f"instance {other} is of default/payment, not default/cart")
    missing = client.post(CERTIFICATES, json={"csr": csr, "instance": str(uuid.uuid4())})
    assert missing.status_code == 404
    assert client.post(CERTIFICATES, json={"csr": csr, "instance": "x"}).status_code == 422
    assert server.admin.get(CERTIFICATES).json() == {"items": []}


def test_rate_limit_per_join_token(start_server: StartServer) -> None:
    server = start_server(cert_burst=3, cert_rate=1)
    csr, _ = make_csr([CART])
    cart = server.client(server.join_token("cart"))
    statuses = [cart.post(CERTIFICATES, json={"csr": csr}).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    limited = cart.post(CERTIFICATES, json={"csr": csr})
    assert limited.status_code == 429
    assert limited.headers["content-type"] == PROBLEM
    assert 50 <= int(limited.headers["retry-after"]) <= 60  # one a minute
    assert limited.json()["title"] == "Too many requests"
    # Another token of the same service has its own bucket.
    again = server.client(server.join_token("cart")).post(CERTIFICATES, json={"csr": csr})
    assert again.status_code == 201
    assert len(server.admin.get(CERTIFICATES).json()["items"]) == 4


def test_trust_bundle_is_public(server: LiveServer) -> None:
    response = server.client().get("/api/v1/identity/trust-bundle")
    assert response.status_code == 200
    bundle = response.json()
    assert bundle["trust_domain"] == TD
    (root,) = certificates(bundle["pem"])
    assert bundle["roots"] == [
        {
            "fingerprint_sha256": root.fingerprint(hashes.SHA256()).hex(),
            "not_after": root.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
            "state": "active",
        }
    ]
    csr, _ = make_csr([CART])
    issued = server.client(server.join_token("cart")).post(CERTIFICATES, json={"csr": csr})
    assert issued.json()["trust_bundle"] == bundle["pem"]


def test_trust_domain_and_lifetime_come_from_settings(
    start_server: StartServer, clock: FakeClock, tmp_path: Path
) -> None:
    server = start_server(trust_domain="prod.example", cert_ttl="30s")
    identity = "spiffe://prod.example/ns/shop/sa/cart"
    csr, key = make_csr([identity])
    response = server.client(server.join_token("cart", namespace="shop")).post(
        CERTIFICATES, json={"csr": csr}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    leaf, _ = certificates(body["certificate_chain"])
    assert leaf.not_valid_after_utc == clock.now + timedelta(seconds=30)
    check_svid(
        tmp_path,
        body["certificate_chain"],
        body["trust_bundle"],
        trust_domain="prod.example",
        spiffe_id=identity,
        key=key,
        at=clock.now,
    )
    (root,) = certificates(body["trust_bundle"])
    assert "OU=prod.example" in root.subject.rfc4514_string()


def test_list_certificates_filters_newest_first(server: LiveServer, clock: FakeClock) -> None:
    cart_token, pay_token = server.join_token("cart"), server.join_token("payment")
    cart_a, cart_b = server.register("cart")["id"], server.register("cart")["id"]
    serials = []
    for token, identity, instance in [
        (cart_token, CART, cart_a),
        (cart_token, CART, cart_b),
        (pay_token, CART.replace("cart", "payment"), None),
        (cart_token, CART, cart_a),
    ]:
        clock.advance(1)
        csr, _ = make_csr([identity])
        body = {"csr": csr, "instance": instance}
        response = server.client(token).post(CERTIFICATES, json=body)
        assert response.status_code == 201, response.text
        serials.append(response.json()["serial"])

    def listed(**params: object) -> list[str]:
        response = server.admin.get(CERTIFICATES, params=params)
        assert response.status_code == 200, response.text
        return [r["serial"] for r in response.json()["items"]]

    assert listed() == serials[::-1]
    assert listed(service="cart") == [serials[3], serials[1], serials[0]]
    assert listed(namespace="default", service="payment") == [serials[2]]
    assert listed(instance=cart_a) == [serials[3], serials[0]]
    assert listed(instance=cart_a, limit=1) == [serials[3]]
    assert listed(namespace="shop") == []
    assert server.admin.get(CERTIFICATES, params={"limit": 0}).status_code == 422
    assert server.client(cart_token).get(CERTIFICATES).status_code == 403


def test_proxies_name_each_ones_newest_certificate(server: LiveServer, clock: FakeClock) -> None:
    token = server.join_token("cart")
    cart_a, cart_b = server.register("cart")["id"], server.register("cart")["id"]
    issued = {}
    for instance in (cart_a, cart_a, None):
        clock.advance(60)
        csr, _ = make_csr([CART])
        response = server.client(token).post(CERTIFICATES, json={"csr": csr, "instance": instance})
        assert response.status_code == 201, response.text
        issued[instance] = response.json()
    proxies = {p["instance"]: p for p in server.admin.get("/api/v1/proxies").json()}
    newest = issued[cart_a]
    assert proxies[cart_a]["certificate"] == {
        "serial": newest["serial"],
        "not_before": newest["not_before"],
        "not_after": newest["not_after"],
    }
    # Certificates issued to no instance (or to another) are not this one's.
    assert proxies[cart_b]["certificate"] is None
    for instance in (cart_a, cart_b):
        registered = server.admin.get(
            f"/api/v1/namespaces/default/services/cart/instances/{instance}"
        ).json()
        assert proxies[instance]["state"] == registered["state"] == "starting"
        assert proxies[instance]["lease_expires_at"] == registered["lease_expires_at"]
