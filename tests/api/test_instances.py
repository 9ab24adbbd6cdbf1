"""Registering, renewing, draining and deregistering instances; join token scoping."""

from __future__ import annotations

import uuid

from tests.api.live import LiveServer

INSTANCES = "/api/v1/namespaces/default/services/{service}/instances"


def _path(service: str, instance_id: str = "", suffix: str = "") -> str:
    path = INSTANCES.format(service=service)
    return f"{path}/{instance_id}{suffix}" if instance_id else path


def test_register_renew_deregister(api: LiveServer) -> None:
    client = api.client(api.join_token("cart"))
    body = {
        "address": "10.0.0.7",
        "inbound_port": 15006,
        "app_port": 8080,
        "admin_address": "10.0.0.7:9901",
        "zone": "zone-a",
        "labels": {"team": "shop", "app.kubernetes.io/name": "cart"},
    }
    response = client.post(_path("cart"), json=body)
    assert response.status_code == 201, response.text
    reg = response.json()
    assert uuid.UUID(reg["id"])
    assert reg["state"] == "starting"
    assert reg["lease_ttl_s"] == 15.0
    assert reg["renew_every_s"] == 5.0
    assert {k: reg[k] for k in body} == body

    renewed = client.put(_path("cart", reg["id"], "/lease"), json={"health": "passing"})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["state"] == "healthy"
    assert renewed.json()["lease_expires_at"] > reg["lease_expires_at"]

    service = api.admin.get("/api/v1/namespaces/default/services/cart").json()
    assert service["endpoints_ready"] == 1
    assert [(e["id"], e["state"]) for e in service["endpoints"]] == [(reg["id"], "healthy")]

    assert client.delete(_path("cart", reg["id"])).status_code == 204
    service = api.admin.get("/api/v1/namespaces/default/services/cart").json()
    assert service["endpoints"] == []
    gone = client.put(_path("cart", reg["id"], "/lease"), json={"health": "passing"})
    assert gone.status_code == 404
    assert client.delete(_path("cart", reg["id"])).status_code == 404


def test_admin_address_is_kept_in_canonical_form_and_checked(api: LiveServer) -> None:
    client = api.client(api.join_token("cart"))
    base = {"address": "10.0.0.7", "inbound_port": 15006}
    registered = client.post(_path("cart"), json=base | {"admin_address": "[::0001]:9901"})
    assert registered.status_code == 201, registered.text
    assert registered.json()["admin_address"] == "[::1]:9901"
    without = client.post(_path("cart"), json=base)
    assert without.json()["admin_address"] is None
    for bad in ("10.0.0.7", "10.0.0.7:0", "10.0.0.7:65536", "::1:9901", "host:9901", ":9901"):
        refused = client.post(_path("cart"), json=base | {"admin_address": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert "admin_address" in refused.text
    endpoints = api.admin.get("/api/v1/namespaces/default/services/cart").json()["endpoints"]
    assert {e["id"] for e in endpoints} == {registered.json()["id"], without.json()["id"]}


def test_health_flips_after_consecutive_reports(api: LiveServer) -> None:
    reg = api.register("cart")
    lease = _path("cart", reg["id"], "/lease")

    def report(health: str) -> str:
        response = api.admin.put(lease, json={"health": health})
        assert response.status_code == 200, response.text
        state: str = response.json()["state"]
        return state

    assert report("passing") == "healthy"
    assert report("failing") == "healthy"  # one failure is not enough (threshold 2)
    assert report("failing") == "unhealthy"
    assert report("passing") == "unhealthy"
    assert report("passing") == "healthy"


def test_drain(api: LiveServer) -> None:
    reg = api.register("cart")
    drained = api.admin.post(_path("cart", reg["id"], "/drain"))
    assert drained.status_code == 200
    assert drained.json()["state"] == "draining"
    renewed = api.admin.put(_path("cart", reg["id"], "/lease"), json={"health": "passing"})
    assert renewed.json()["state"] == "draining"
    service = api.admin.get("/api/v1/namespaces/default/services/cart").json()
    assert service["endpoints_ready"] == 0
    assert service["endpoints_total"] == 1


def test_join_token_is_scoped_to_its_service(api: LiveServer) -> None:
    token = api.join_token("cart")
    client = api.client(token)
    wrong = client.post(_path("payment"), json={"address": "10.0.0.1", "inbound_port": 1})
    assert wrong.status_code == 403
    assert wrong.json()["detail"] == "this join token is for default/cart, not default/payment"
    other_ns = client.post(
        "/api/v1/namespaces/shop/services/cart/instances",
        json={"address": "10.0.0.1", "inbound_port": 1},
    )
    assert other_ns.status_code == 403
    reg = api.register("payment")
    assert client.delete(_path("payment", reg["id"])).status_code == 403
    assert client.get("/api/v1/services").status_code == 403
    assert client.post("/api/v1/tokens", json={"service": "cart"}).status_code == 403


def test_revoked_and_unknown_join_tokens_are_refused(api: LiveServer) -> None:
    token = api.join_token("cart")
    token_id = token.removeprefix("mpj_").split(".")[0]
    assert api.admin.delete(f"/api/v1/tokens/{token_id}").status_code == 204
    body = {"address": "10.0.0.1", "inbound_port": 1}
    assert api.client(token).post(_path("cart"), json=body).status_code == 401
    forged = token[:-4] + "AAAA"
    assert api.client(forged).post(_path("cart"), json=body).status_code == 401


def test_token_list_never_shows_secrets(api: LiveServer) -> None:
    token = api.join_token("cart", ttl="30m")
    listed = api.admin.get("/api/v1/tokens").json()["items"]
    assert len(listed) == 1
    assert "token" not in listed[0]
    assert token.split(".")[1] not in str(listed)
    assert listed[0]["service"] == "cart"


def test_version_services(api: LiveServer) -> None:
    v1 = api.register("payment", version="v1", address="10.0.0.1")
    v2 = api.register("payment", version="v2", address="10.0.0.2")
    api.register("cart")
    for reg in (v1, v2):
        api.admin.put(_path("payment", reg["id"], "/lease"), json={"health": "passing"})

    names = [
        (s["name"], s["version_of"]) for s in api.admin.get("/api/v1/services").json()["items"]
    ]
    assert names == [
        ("cart", None),
        ("payment", None),
        ("payment-v1", "payment"),
        ("payment-v2", "payment"),
    ]

    payment = api.admin.get("/api/v1/namespaces/default/services/payment").json()
    assert {e["id"] for e in payment["endpoints"]} == {v1["id"], v2["id"]}
    canary = api.admin.get("/api/v1/namespaces/default/services/payment-v2").json()
    assert canary["version_of"] == "payment"
    assert canary["version"] == "v2"
    assert [(e["id"], e["address"], e["state"]) for e in canary["endpoints"]] == [
        (v2["id"], "10.0.0.2", "healthy")
    ]
    api.admin.delete(_path("payment", v2["id"]))
    assert api.admin.get("/api/v1/namespaces/default/services/payment-v2").status_code == 404


def test_services_by_namespace(api: LiveServer) -> None:
    api.register("cart", namespace="shop")
    api.register("cart")
    shop = api.admin.get("/api/v1/namespaces/shop/services").json()["items"]
    assert [(s["namespace"], s["name"]) for s in shop] == [("shop", "cart")]
    assert api.admin.get("/api/v1/namespaces/nothing/services").json() == {"items": []}
    assert api.admin.get("/api/v1/namespaces/shop/services/payment").status_code == 404


def test_delete_service_only_without_instances(api: LiveServer) -> None:
    reg = api.register("cart")
    busy = api.admin.delete("/api/v1/namespaces/default/services/cart")
    assert busy.status_code == 409
    api.admin.delete(_path("cart", reg["id"]))
    assert api.admin.delete("/api/v1/namespaces/default/services/cart").status_code == 204
    assert api.admin.get("/api/v1/namespaces/default/services/cart").status_code == 404


def test_registration_is_validated(api: LiveServer) -> None:
    cases = [
        {"address": "not-an-ip", "inbound_port": 1},
        {"address": "10.0.0.1", "inbound_port": 0},
        {"address": "10.0.0.1", "inbound_port": 70000},
        {"address": "10.0.0.1", "inbound_port": 1, "version": "V2"},
        {"address": "10.0.0.1", "inbound_port": 1, "labels": {"bad key": "x"}},
        {"address": "10.0.0.1", "inbound_port": 1, "surprise": True},
        {"inbound_port": 1},
    ]
    for body in cases:
        response = api.admin.post(_path("cart"), json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    too_long = api.admin.post(
        _path("a" * 60), json={"address": "10.0.0.1", "inbound_port": 1, "version": "v1234"}
    )
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["path"] == "version"


def test_the_first_instance_sets_the_services_protocol(api: LiveServer) -> None:
    first = api.register("ledger-db", protocol="tcp")
    view = api.admin.get("/api/v1/namespaces/default/services/ledger-db").json()
    assert view["protocol"] == "tcp"
    api.register("ledger-db", protocol="tcp", inbound_port=15007)
    clash = api.admin.post(
        "/api/v1/namespaces/default/services/ledger-db/instances",
        json={"address": "127.0.0.1", "inbound_port": 15008, "protocol": "http"},
    )
    assert clash.status_code == 409
    assert "speaks tcp, not http" in clash.json()["detail"]
    # Without instances the service takes what the next one says.
    for reg in api.admin.get("/api/v1/namespaces/default/services/ledger-db").json()["endpoints"]:
        api.admin.delete(f"/api/v1/namespaces/default/services/ledger-db/instances/{reg['id']}")
    api.register("ledger-db", protocol="http")
    view = api.admin.get("/api/v1/namespaces/default/services/ledger-db").json()
    assert view["protocol"] == "http"
    assert first["service"] == "ledger-db"
