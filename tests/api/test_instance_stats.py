"""Inbound stats ride on lease renewals; ``GET .../services/{svc}/stats`` adds them up."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.live import LiveServer

INSTANCES = "/api/v1/namespaces/default/services/payment/instances"
STATS = "/api/v1/namespaces/default/services/payment/stats"
STARTED = "2026-12-01T10:00:00Z"
BOUNDS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "+Inf")


def _stats(ok: int, errors: int = 0, *, started_at: str = STARTED, slow: int = 0) -> dict[str, Any]:
    """``ok`` + ``errors`` requests, all under 5 ms except ``slow`` between 250 and 500 ms."""
    total = ok + errors
    fast = total - slow
    buckets = {le: fast + (slow if le in ("0.5", "1.0", "+Inf") else 0) for le in BOUNDS}
    return {
        "started_at": started_at,
        "requests": {"1xx": 0, "2xx": ok, "3xx": 0, "4xx": 0, "5xx": errors},
        "duration_buckets": buckets,
    }


def _renew(api: LiveServer, instance: str, stats: dict[str, Any] | None) -> Any:
    body: dict[str, Any] = {"health": "passing"}
    if stats is not None:
        body["stats"] = stats
    return api.admin.put(f"{INSTANCES}/{instance}/lease", json=body)


def test_lease_stats_are_kept_per_instance_and_added_up(api: LiveServer) -> None:
    v1 = api.register("payment", version="v1")["id"]
    v2a = api.register("payment", version="v2")["id"]
    v2b = api.register("payment", version="v2")["id"]

    before = api.admin.get(STATS, params={"version": "v2"})
    assert before.status_code == 200, before.text
    body = before.json()
    assert (body["service"], body["version"], body["reported_every_s"]) == ("payment", "v2", 5.0)
    assert (body["requests"], body["duration_buckets"]) == ({}, {})
    assert [(i["id"], i["reported_at"], i["requests"]) for i in body["instances"]] == [
        (v2a, None, {}),
        (v2b, None, {}),
    ]

    for instance, stats in ((v1, _stats(1000)), (v2a, _stats(90, 10)), (v2b, _stats(50, slow=5))):
        answer = _renew(api, instance, stats)
        assert answer.status_code == 200, answer.text
        assert answer.json()["state"] == "healthy"

    body = api.admin.get(STATS, params={"version": "v2"}).json()
    assert body["requests"] == {"1xx": 0, "2xx": 140, "3xx": 0, "4xx": 0, "5xx": 10}
    assert list(body["duration_buckets"]) == list(BOUNDS)  # ordered by bound
    assert body["duration_buckets"]["0.25"] == 145
    assert body["duration_buckets"]["+Inf"] == 150
    own = {i["id"]: i for i in body["instances"]}
    assert set(own) == {v2a, v2b}
    assert own[v2a]["requests"]["5xx"] == 10
    assert own[v2a]["started_at"].startswith("2026-12-01T10:00:00")
    assert own[v2a]["reported_at"] is not None
    assert (own[v2b]["duration_buckets"]["0.25"], own[v2b]["duration_buckets"]["0.5"]) == (45, 50)

    # The whole service: every version.
    everything = api.admin.get(STATS).json()
    assert everything["version"] is None
    assert everything["requests"]["2xx"] == 1140
    assert len(everything["instances"]) == 3

    # A renewal without stats keeps the latest report; a new one replaces it.
    assert _renew(api, v2a, None).status_code == 200
    assert api.admin.get(STATS, params={"version": "v2"}).json()["requests"]["2xx"] == 140
    assert _renew(api, v2a, _stats(5, started_at="2026-12-01T11:00:00Z")).status_code == 200
    body = api.admin.get(STATS, params={"version": "v2"}).json()
    assert body["requests"]["2xx"] == 55
    assert body["requests"]["5xx"] == 0  # a restarted sidecar: its counters start again

    # A deregistered instance takes its report with it.
    assert api.admin.delete(f"{INSTANCES}/{v2b}").status_code == 204
    body = api.admin.get(STATS, params={"version": "v2"}).json()
    assert [i["id"] for i in body["instances"]] == [v2a]
    assert body["requests"]["2xx"] == 5


def test_stats_need_the_admin_token_and_a_known_service(api: LiveServer) -> None:
    api.register("payment", version="v1")
    assert api.client().get(STATS).status_code == 401
    assert api.client(api.join_token("payment")).get(STATS).status_code == 403
    missing = api.admin.get("/api/v1/namespaces/default/services/nothing/stats")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    empty = api.admin.get(STATS, params={"version": "v9"}).json()
    assert (empty["instances"], empty["requests"]) == ([], {})
    assert api.admin.get(STATS, params={"version": "V2!"}).status_code == 422


def _edge(direction: str, responses: dict[str, int]) -> dict[str, Any]:
    peer = {"namespace": "default", "service": "cart", "version": "unknown"}
    return {"direction": direction, "peer": peer, "mtls": True, "responses": responses}


def test_edges_take_any_three_digit_status_and_reach_the_stats(api: LiveServer) -> None:
    instance = api.register("payment", version="v2")["id"]
    edge = _edge("inbound", {"200": 4, "299": 1, "599": 2}) | {
        "identity": "spiffe://meshpy.local/ns/default/sa/cart",
        "grpc": {"0": 3, "other": 1},
        "tcp": {"opened": 2, "closed": 1, "read_bytes": 10, "write_bytes": 20},
    }
    assert _renew(api, instance, _stats(7) | {"edges": [edge]}).status_code == 200
    stats = api.admin.get("/api/v1/stats", params={"service": "payment"}).json()
    [row] = stats["rows"]
    assert row["destination"]["version"] == "v2"
    # A sidecar older than this server counts from its second report: none yet.
    assert row["requests"] == 0
    edge["responses"] = {"200": 6, "299": 1, "599": 3}
    edge["grpc"] = {"0": 4, "other": 1}
    assert _renew(api, instance, _stats(7) | {"edges": [edge]}).status_code == 200
    [row] = api.admin.get("/api/v1/stats", params={"service": "payment"}).json()["rows"]
    assert (row["status_codes"], row["grpc_statuses"]) == (
        {"200": 2, "599": 1},
        {"0": 1},
    )
    assert (row["requests"], row["failures"]) == (3, 1)


def _without(key: str) -> dict[str, Any]:
    stats = _stats(10)
    del stats[key]
    return stats


@pytest.mark.parametrize(
    ("stats", "field"),
    [
        (_stats(10) | {"requests": {"2xx": -1}}, "stats.requests.2xx"),
        (_stats(10) | {"requests": {"6xx": 1}}, "stats.requests.6xx"),
        (_stats(10) | {"requests": {"2xx": "many"}}, "stats.requests.2xx"),
        (_stats(10) | {"duration_buckets": {"0.1": 5, "+Inf": 4}}, "stats"),
        (_stats(10) | {"duration_buckets": {"0.1": 5}}, "stats"),
        (_stats(10) | {"duration_buckets": {"fast": 5, "+Inf": 5}}, "stats.duration_buckets.fast"),
        (_stats(10) | {"duration_buckets": {"0.1": 1, "0.10": 1, "+Inf": 1}}, "stats"),
        (_stats(10) | {"duration_buckets": {f"{i}.0": i for i in range(70)}}, "stats"),
        (_stats(10) | {"extra": 1}, "stats.extra"),
        (_stats(10) | {"started_at": "yesterday"}, "stats.started_at"),
        (_without("started_at"), "stats.started_at"),
        (_without("requests"), "stats.requests"),
        (_stats(10) | {"edges": [_edge("inbound", {"2000": 1})]}, "stats.edges[0].responses"),
        (_stats(10) | {"edges": [_edge("sideways", {"200": 1})]}, "stats.edges[0].direction"),
        (_stats(10) | {"edges": [_edge("inbound", {}) | {"grpc": {"17": 1}}]}, "stats.edges[0]"),
        (_stats(10) | {"edges": [_edge("inbound", {})] * 2}, "stats"),
        (_stats(10) | {"edges": [_edge("inbound", {})] * 2049}, "stats.edges"),
    ],
)
def test_bad_stats_are_refused_and_change_nothing(
    api: LiveServer, stats: dict[str, Any], field: str
) -> None:
    instance = api.register("payment", version="v2")["id"]
    first = _renew(api, instance, _stats(7))
    assert first.status_code == 200

    refused = _renew(api, instance, stats)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert refused.headers["content-type"] == "application/problem+json"
    assert any(e["path"].startswith(field) for e in problem["errors"]), problem

    # Neither the lease nor the stored report moved.
    row = api.admin.get(f"{INSTANCES}/{instance}").json()
    assert row["lease_expires_at"] == first.json()["lease_expires_at"]
    assert api.admin.get(STATS).json()["requests"]["2xx"] == 7


def test_a_join_token_reports_only_for_its_service(api: LiveServer) -> None:
    instance = api.register("payment", version="v2")["id"]
    cart = api.client(api.join_token("cart"))
    answer = cart.put(
        f"{INSTANCES}/{instance}/lease", json={"health": "passing", "stats": _stats(3)}
    )
    assert answer.status_code == 403
    assert api.admin.get(STATS).json()["requests"] == {}


def test_the_rules_client_reads_stats(api: LiveServer) -> None:
    from meshpy.rules import ApiError, Client

    instance = api.register("payment", version="v2")["id"]
    assert _renew(api, instance, _stats(4, 1)).status_code == 200
    with Client(api.url, api.admin_token) as mesh:
        read = mesh.stats("payment", version="v2")
        assert read["requests"]["5xx"] == 1
        assert [i["id"] for i in read["instances"]] == [instance]
        assert mesh.stats("payment", version="v1")["instances"] == []
        with pytest.raises(ApiError) as missing:
            mesh.stats("nothing")
    assert missing.value.status == 404
