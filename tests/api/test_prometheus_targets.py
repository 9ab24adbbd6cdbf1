"""``GET /api/v1/prometheus/targets``: Prometheus HTTP service discovery of the sidecars."""

from __future__ import annotations

from tests.api.live import LiveServer

TARGETS = "/api/v1/prometheus/targets"


def test_one_group_per_instance_with_an_admin_address(api: LiveServer) -> None:
    assert api.admin.get(TARGETS).json() == []
    cart = api.register(
        "cart",
        address="10.0.0.7",
        admin_address="10.0.0.7:9901",
        version="v1",
        zone="zone-a",
        labels={"team": "shop", "app.kubernetes.io/name": "cart"},
    )
    payment = api.register("payment", namespace="billing", admin_address="[::0001]:9901")
    api.register("legacy")  # no admin address: nothing to scrape
    drained = api.admin.post(
        f"/api/v1/namespaces/billing/services/payment/instances/{payment['id']}/drain"
    )
    assert drained.status_code == 200, drained.text

    response = api.admin.get(TARGETS)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [
        {
            "targets": ["[::1]:9901"],
            "labels": {
                "namespace": "billing",
                "service": "payment",
                "__meta_meshpy_namespace": "billing",
                "__meta_meshpy_service": "payment",
                "__meta_meshpy_version": "",
                "__meta_meshpy_instance": payment["id"],
                "__meta_meshpy_state": "draining",
                "__meta_meshpy_address": "127.0.0.1",
                "__meta_meshpy_zone": "",
            },
        },
        {
            "targets": ["10.0.0.7:9901"],
            "labels": {
                "namespace": "default",
                "service": "cart",
                "version": "v1",
                "__meta_meshpy_namespace": "default",
                "__meta_meshpy_service": "cart",
                "__meta_meshpy_version": "v1",
                "__meta_meshpy_instance": cart["id"],
                "__meta_meshpy_state": "starting",
                "__meta_meshpy_address": "10.0.0.7",
                "__meta_meshpy_zone": "zone-a",
                "__meta_meshpy_label_app_kubernetes_io_name": "cart",
                "__meta_meshpy_label_team": "shop",
            },
        },
    ]

    only = api.admin.get(TARGETS, params={"namespace": "default"}).json()
    assert [group["targets"] for group in only] == [["10.0.0.7:9901"]]
    assert api.admin.get(TARGETS, params={"namespace": "elsewhere"}).json() == []

    # A deregistered sidecar is no longer a target.
    gone = api.admin.delete(f"/api/v1/namespaces/default/services/cart/instances/{cart['id']}")
    assert gone.status_code == 204, gone.text
    assert [group["targets"] for group in api.admin.get(TARGETS).json()] == [["[::1]:9901"]]


def test_targets_need_the_admin_token(api: LiveServer) -> None:
    for client in (api.client(), api.client("mpa_wrong")):
        refused = client.get(TARGETS)
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"] == "Bearer"
    join = api.client(api.join_token("cart")).get(TARGETS)
    assert join.status_code == 403, join.text
    assert "use the admin token" in join.json()["detail"]


def test_a_bad_namespace_is_refused(api: LiveServer) -> None:
    for bad in ("Shop", "a" * 64, "-x"):
        refused = api.admin.get(TARGETS, params={"namespace": bad})
        assert refused.status_code == 422, (bad, refused.text)
        assert "namespace" in refused.text
