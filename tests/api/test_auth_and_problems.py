"""Admin auth, and every error answered as an RFC 9457 problem document."""

from __future__ import annotations

import os
import re
import stat

import pytest

from tests.api.live import LiveServer

PROBLEM = "application/problem+json"


def test_admin_token_file_is_private_and_kept(api: LiveServer) -> None:
    path = api.settings.admin_token_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert api.admin_token.startswith("mpa_")
    assert len(api.admin_token) > 40


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/services"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/httproutes"),
        ("POST", "/api/v1/apply"),
        ("POST", "/api/v1/namespaces/default/services/cart/instances"),
    ],
)
def test_no_or_bad_token_is_401(api: LiveServer, method: str, path: str) -> None:
    for client in (api.client(), api.client("mpa_wrong"), api.client("garbage")):
        response = client.request(method, path, json={})
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"
        body = response.json()
        assert body["status"] == 401
        assert body["title"] == "Unauthorized"
        assert body["instance"] == path


def test_problem_shapes(api: LiveServer) -> None:
    not_found = api.admin.get("/api/v1/nothing")
    assert not_found.status_code == 404
    assert not_found.headers["content-type"] == PROBLEM
    assert not_found.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "no such path: /api/v1/nothing",
        "instance": "/api/v1/nothing",
    }

    not_allowed = api.admin.patch("/api/v1/services")
    assert not_allowed.status_code == 405
    assert not_allowed.headers["content-type"] == PROBLEM
    assert not_allowed.headers["allow"] == "GET"
    assert not_allowed.json()["title"] == "Method Not Allowed"

    invalid = api.admin.post("/api/v1/tokens", json={"service": "Not A Name", "ttl": "soon"})
    assert invalid.status_code == 422
    body = invalid.json()
    assert body["type"] == "https://meshpy.io/problems/invalid"
    assert body["title"] == "Invalid request"
    assert [e["path"] for e in body["errors"]] == ["service", "ttl"]
    assert body["detail"].startswith("service: String should match pattern")

    malformed = api.admin.post(
        "/api/v1/tokens", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["title"] == "Malformed request body"

    missing = api.admin.get("/api/v1/namespaces/default/services/nothing")
    assert missing.status_code == 404
    assert missing.json()["type"] == "https://meshpy.io/problems/not-found"
    assert missing.json()["detail"] == "service default/nothing not found"

    bad_path = api.admin.get("/api/v1/namespaces/Bad_NS/services")
    assert bad_path.status_code == 422
    assert bad_path.json()["errors"][0]["path"] == "path.namespace"


def test_token_ttl_bounds(api: LiveServer) -> None:
    for ttl in ("0s", "9000h"):
        response = api.admin.post("/api/v1/tokens", json={"service": "cart", "ttl": ttl})
        assert response.status_code == 422, ttl
        assert response.json()["errors"][0]["path"] == "ttl"


def test_health_and_metrics(api: LiveServer) -> None:
    anonymous = api.client()
    assert anonymous.get("/healthz").json() == {"status": "ok", "revision": None}
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    reg = api.register("cart")
    api.admin.put(
        f"/api/v1/namespaces/default/services/cart/instances/{reg['id']}/lease",
        json={"health": "passing"},
    )
    anonymous.get("/api/v1/services")
    text = anonymous.get("/metrics").text
    assert "meshpy_registry_up 1.0" in text
    assert 'meshpy_registry_instances{state="healthy"} 1.0' in text
    assert "meshpy_registry_services 1.0" in text
    assert (
        'meshpy_api_requests_total{method="POST",'
        'route="/api/v1/namespaces/{namespace}/services/{service}/instances",status="201"} 1.0'
    ) in text
    assert (
        'meshpy_api_requests_total{method="GET",route="/api/v1/services",status="401"} 1.0' in text
    )
    assert "http_server_request_duration_seconds_bucket" in text


def _sample(template: str) -> str:
    """A path an OpenAPI path template takes: each parameter ``sample-1``."""
    return re.sub(r"\{[^}]+\}", "sample-1", template)


def test_405_names_every_method_the_path_takes(api: LiveServer) -> None:
    """A method no route takes gets 405 with an ``Allow`` of every method that the
    published schema gives the path."""
    paths: dict[str, dict[str, object]] = api.admin.get("/openapi.json").json()["paths"]
    for template in paths:
        path = _sample(template)
        expected = sorted(
            method.upper() for other in paths if _sample(other) == path for method in paths[other]
        )
        answer = api.admin.request("OPTIONS", path)
        assert answer.status_code == 405, (path, answer.text)
        assert answer.headers["allow"] == ", ".join(expected), path
    # The case that named one method of three.
    route = api.admin.request("OPTIONS", "/api/v1/namespaces/default/httproutes/x")
    assert route.headers["allow"] == "DELETE, GET, PUT"
