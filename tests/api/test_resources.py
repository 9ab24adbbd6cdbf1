"""Resources over REST: CRUD, generation, status conditions, apply all-or-nothing."""

from __future__ import annotations

import json
from typing import Any

from tests.api.live import LiveServer

ROUTES = "/api/v1/namespaces/default/httproutes"


def route(name: str = "checkout", *backends: str, parent: str = "cart") -> dict[str, Any]:
    """An HTTPRoute attached to ``parent`` splitting traffic over ``backends``."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": parent}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": b, "port": 80, "weight": 1} for b in backends or [parent]
                    ]
                }
            ],
        },
    }


def conditions(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{type: (status, reason)} of the first parent's conditions."""
    found = doc["status"]["parents"][0]["conditions"]
    return {c["type"]: (c["status"], c["reason"]) for c in found}


def test_crud_and_generation(api: LiveServer) -> None:
    api.register("cart")
    created = api.admin.put(f"{ROUTES}/checkout", json=route())
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["metadata"]["generation"] == 1
    assert doc["metadata"]["namespace"] == "default"
    assert conditions(doc) == {
        "Accepted": ("True", "Accepted"),
        "ResolvedRefs": ("True", "ResolvedRefs"),
    }
    assert doc["status"]["parents"][0]["conditions"][0]["observedGeneration"] == 1

    same = api.admin.put(f"{ROUTES}/checkout", json=route())
    assert same.status_code == 200
    assert same.json()["metadata"]["generation"] == 1

    labelled = route()
    labelled["metadata"]["labels"] = {"team": "shop"}
    relabelled = api.admin.put(f"{ROUTES}/checkout", json=labelled)
    assert relabelled.json()["metadata"]["generation"] == 1
    assert relabelled.json()["metadata"]["labels"] == {"team": "shop"}

    changed = api.admin.put(f"{ROUTES}/checkout", json=route("checkout", "cart", "payment"))
    assert changed.status_code == 200
    doc = changed.json()
    assert doc["metadata"]["generation"] == 2
    assert conditions(doc)["ResolvedRefs"] == ("False", "BackendNotFound")
    assert doc["status"]["parents"][0]["conditions"][1]["observedGeneration"] == 2

    got = api.admin.get(f"{ROUTES}/checkout").json()
    assert got == doc
    listed = api.admin.get(ROUTES).json()["items"]
    assert [d["metadata"]["name"] for d in listed] == ["checkout"]
    assert api.admin.get("/api/v1/httproutes").json()["items"] == listed
    assert api.admin.get("/api/v1/namespaces/other/httproutes").json() == {"items": []}

    assert api.admin.delete(f"{ROUTES}/checkout").status_code == 204
    assert api.admin.get(f"{ROUTES}/checkout").status_code == 404
    assert api.admin.delete(f"{ROUTES}/checkout").status_code == 404


def test_missing_backend_then_service_appears(api: LiveServer) -> None:
    api.register("cart")
    doc = api.admin.put(f"{ROUTES}/canary", json=route("canary", "payment-v1", "payment-v2")).json()
    assert conditions(doc)["ResolvedRefs"] == ("False", "BackendNotFound")
    assert "payment-v1 does not exist" in doc["status"]["parents"][0]["conditions"][1]["message"]

    api.register("payment", version="v1")
    after_v1 = conditions(api.admin.get(f"{ROUTES}/canary").json())
    assert after_v1["ResolvedRefs"] == ("False", "BackendNotFound")
    reg = api.register("payment", version="v2")
    assert conditions(api.admin.get(f"{ROUTES}/canary").json())["ResolvedRefs"] == (
        "True",
        "ResolvedRefs",
    )

    api.admin.delete(f"/api/v1/namespaces/default/services/payment/instances/{reg['id']}")
    assert conditions(api.admin.get(f"{ROUTES}/canary").json())["ResolvedRefs"] == (
        "False",
        "BackendNotFound",
    )


def test_parent_missing_is_not_accepted(api: LiveServer) -> None:
    doc = api.admin.put(f"{ROUTES}/orphan", json=route("orphan", parent="ghost")).json()
    assert conditions(doc)["Accepted"] == ("False", "NoMatchingParent")


def test_policies(api: LiveServer) -> None:
    api.register("payment")
    policy = {
        "apiVersion": "policy.meshpy.io/v1alpha1",
        "kind": "BackendPolicy",
        "metadata": {"name": "payment-lb"},
        "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "payment"}]},
    }
    response = api.admin.put("/api/v1/namespaces/default/backendpolicies/payment-lb", json=policy)
    assert response.status_code == 201, response.text
    assert response.json()["status"]["conditions"][0]["status"] == "True"
    listed = api.admin.get("/api/v1/backendpolicies").json()["items"]
    assert [d["kind"] for d in listed] == ["BackendPolicy"]
    assert api.admin.get("/api/v1/authorizationpolicies").json() == {"items": []}


def test_put_refuses_bad_documents(api: LiveServer) -> None:
    bad_weight = route()
    bad_weight["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    response = api.admin.put(f"{ROUTES}/checkout", json=bad_weight)
    assert response.status_code == 422
    body = response.json()
    assert body["title"] == "Invalid resource"
    assert body["errors"][0]["path"] == "spec.rules[0].backendRefs[0].weight"

    cases = [
        (route("other"), "metadata.name"),
        ({**route(), "metadata": {"name": "checkout", "namespace": "shop"}}, "metadata.namespace"),
        (
            {
                "apiVersion": "policy.meshpy.io/v1alpha1",
                "kind": "BackendPolicy",
                "metadata": {"name": "checkout"},
                "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "cart"}]},
            },
            "kind",
        ),
    ]
    for doc, path in cases:
        response = api.admin.put(f"{ROUTES}/checkout", json=doc)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["path"] == path
    nul = route()
    nul["metadata"]["annotations"] = {"note": "a\x00b"}
    response = api.admin.put(f"{ROUTES}/checkout", json=nul)
    assert response.status_code == 422, response.text
    malformed = api.admin.put(
        f"{ROUTES}/checkout", content=b"{", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert api.admin.get(ROUTES).json() == {"items": []}


def test_apply_yaml_stream(api: LiveServer) -> None:
    api.register("cart")
    stream = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: one}
spec:
  parentRefs: [{group: "", kind: Service, name: cart}]
  rules: [{backendRefs: [{name: cart, port: 80}]}]
---
apiVersion: policy.meshpy.io/v1alpha1
kind: BackendPolicy
metadata: {name: lb, namespace: shop}
spec:
  targetRefs: [{group: "", kind: Service, name: cart}]
"""
    response = api.admin.post(
        "/api/v1/apply", content=stream, headers={"content-type": "application/yaml"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == [
        {
            "kind": "HTTPRoute",
            "namespace": "default",
            "name": "one",
            "generation": 1,
            "result": "created",
        },
        {
            "kind": "BackendPolicy",
            "namespace": "shop",
            "name": "lb",
            "generation": 1,
            "result": "created",
        },
    ]
    again = api.admin.post("/api/v1/apply", content=stream).json()["items"]
    assert [i["result"] for i in again] == ["unchanged", "unchanged"]


def test_apply_json_list_with_namespace(api: LiveServer) -> None:
    docs = [route("a"), route("b")]
    response = api.admin.post("/api/v1/apply?namespace=shop", json=docs)
    assert response.status_code == 200, response.text
    assert [(i["namespace"], i["name"]) for i in response.json()["items"]] == [
        ("shop", "a"),
        ("shop", "b"),
    ]
    changed = [route("a", "x"), route("b")]
    items = api.admin.post("/api/v1/apply?namespace=shop", json=changed).json()["items"]
    assert [(i["result"], i["generation"]) for i in items] == [("configured", 2), ("unchanged", 1)]


def test_apply_is_all_or_nothing(api: LiveServer) -> None:
    api.admin.post("/api/v1/apply", json=[route("keep")])
    bad = route("second")
    bad["spec"]["rules"][0]["backendRefs"][0]["weight"] = "heavy"
    response = api.admin.post("/api/v1/apply", json=[route("first"), bad, route("keep", "x")])
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "[1].spec.rules[0].backendRefs[0].weight"
    names = [d["metadata"]["name"] for d in api.admin.get(ROUTES).json()["items"]]
    assert names == ["keep"]
    assert api.admin.get(f"{ROUTES}/keep").json()["metadata"]["generation"] == 1

    duplicate = api.admin.post("/api/v1/apply", json=[route("dup"), route("dup", "x")])
    assert duplicate.status_code == 422
    assert duplicate.json()["errors"][0]["path"] == "[1].metadata.name"
    for body in ("", "--- \n", "[]", ": : :", json.dumps({"kind": "Nope"})):
        response = api.admin.post("/api/v1/apply", content=body)
        assert response.status_code == 422, (body, response.text)
    names = [d["metadata"]["name"] for d in api.admin.get(ROUTES).json()["items"]]
    assert names == ["keep"]


def test_revision_moves_with_every_change(api: LiveServer) -> None:
    start = api.admin.get("/api/v1/revision").json()["revision"]
    api.admin.put(f"{ROUTES}/one", json=route("one"))
    after_put = api.admin.get("/api/v1/revision").json()["revision"]
    assert after_put > start
    api.admin.put(f"{ROUTES}/one", json=route("one"))  # unchanged: no new revision
    assert api.admin.get("/api/v1/revision").json()["revision"] == after_put
    waited = api.admin.get(f"/api/v1/revision?newer_than={after_put}&wait=0.2").json()
    assert waited == {"revision": after_put, "changed": False}
    api.register("cart")
    waited = api.admin.get(f"/api/v1/revision?newer_than={after_put}&wait=5").json()
    assert waited["changed"] is True
    assert waited["revision"] > after_put
