"""Built snapshots are accepted as they are by the Rust core's Proxy.apply."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from meshpy import _core
from meshpy.authz import AUTHZ_DEFAULTS, AuthzDefault
from meshpy.resources import Resource, parse
from meshpy.snapshot import (
    MTLS_MODES,
    InstanceInfo,
    MeshIdentity,
    MeshState,
    MtlsMode,
    ServiceInfo,
    build_snapshot,
)


def _inst(id_: str, service: str, address: str, **fields: Any) -> InstanceInfo:
    values: dict[str, Any] = {
        "namespace": "default",
        "inbound_port": 15006,
        "app_port": 8080,
        "state": "healthy",
    }
    values.update(fields)
    return InstanceInfo(id=id_, service=service, address=address, **values)


def _route(name: str, spec: dict[str, Any], namespace: str = "default") -> Resource:
    return parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def _policy(target: str, lb: str, **more: Any) -> Resource:
    spec: dict[str, Any] = {"targetRefs": [{"kind": "Service", "name": target}], **more}
    spec["loadBalancer"] = {
        "type": lb,
        **({"hashOn": {"sourceIP": True}} if lb == "maglev" else {}),
        **({"hashOn": {"cookie": "session"}} if lb == "ring_hash" else {}),
    }
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "BackendPolicy",
            "metadata": {"name": target},
            "spec": spec,
        }
    )


PARENT = [{"kind": "Service", "name": "payment"}]

MESH = MeshState(
    services=(
        ServiceInfo(namespace="default", name="payment"),
        ServiceInfo(namespace="default", name="cart"),
        ServiceInfo(namespace="default", name="redis", protocol="tcp"),
        ServiceInfo(namespace="billing", name="ledger"),
    ),
    instances=(
        _inst("cart-1", "cart", "127.0.0.1", inbound_port=15106, app_port=8081, zone="zone-a"),
        _inst("pay-1", "payment", "10.0.0.5", version="v1", zone="zone-a"),
        _inst("pay-2", "payment", "10.0.0.6", version="v2"),
        _inst("pay-3", "payment", "fd00::7", version="v2"),
        _inst("pay-4", "payment", "10.0.0.8", version="v1", state="draining"),
        _inst("redis-1", "redis", "10.0.0.9", inbound_port=16379, app_port=6379),
        _inst("ledger-1", "ledger", "10.0.1.4", namespace="billing"),
        _inst("job-1", "batch", "10.0.0.20", app_port=None),
    ),
    routes=(
        _route(
            "canary",
            {
                "parentRefs": PARENT,
                "rules": [
                    {
                        "matches": [
                            {
                                "path": {"type": "Exact", "value": "/charge"},
                                "headers": [{"name": "x-beta", "value": "1"}],
                                "queryParams": [{"name": "dry", "value": "yes"}],
                                "method": "POST",
                            }
                        ],
                        "backendRefs": [{"name": "payment-v2"}],
                        "timeouts": {"request": "0s"},
                    },
                    {
                        "backendRefs": [
                            {"name": "payment-v1", "weight": 90},
                            {"name": "payment-v2", "weight": 10},
                            {"name": "payment-v3", "weight": 0},
                            {"name": "ledger", "namespace": "billing"},
                        ],
                        "timeouts": {"request": "10s", "backendRequest": "1500ms"},
                        "retry": {"attempts": 3, "codes": [502, 503], "backoff": "50ms"},
                        "filters": [
                            {
                                "type": "RequestMirror",
                                "requestMirror": {"backendRef": {"name": "cart"}, "percent": 5},
                            },
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {
                                    "set": [{"name": "X-Env", "value": "prod"}],
                                    "add": [{"name": "x-tag", "value": "a b"}],
                                    "remove": ["X-Debug"],
                                },
                            },
                            {
                                "type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"set": [{"name": "x-by", "value": "m"}]},
                            },
                            {
                                "type": "URLRewrite",
                                "urlRewrite": {
                                    "hostname": "payment.internal",
                                    "path": {
                                        "type": "ReplacePrefixMatch",
                                        "replacePrefixMatch": "",
                                    },
                                },
                            },
                        ],
                    },
                    {
                        "matches": [
                            {
                                "path": {"type": "RegularExpression", "value": "/v[0-9]"},
                                "headers": [
                                    {"type": "RegularExpression", "name": "x-u", "value": "\\w+"}
                                ],
                            }
                        ],
                        "backendRefs": [
                            {
                                "name": "payment-v1",
                                "filters": [
                                    {
                                        "type": "URLRewrite",
                                        "urlRewrite": {
                                            "path": {
                                                "type": "ReplaceFullPath",
                                                "replaceFullPath": "/v1",
                                            }
                                        },
                                    }
                                ],
                            }
                        ],
                        "timeouts": {"request": "0s", "backendRequest": "48h"},
                    },
                    {"matches": [{"path": {"value": "/nowhere"}}]},
                ],
            },
        ),
        _route(
            "consumer",
            {"parentRefs": [{**PARENT[0], "namespace": "default"}], "rules": [{}]},
            namespace="billing",
        ),
    ),
    backend_policies=(
        _policy(
            "payment",
            "round_robin",
            outlierDetection={"consecutive5xx": 3, "consecutiveGatewayErrors": 2},
            connectionLimits={"maxConnections": 10, "maxPendingRequests": 5, "maxRequests": 20},
            retryBudget={"percent": 30, "minRetriesPerSecond": 0},
            slowStart={"window": "30s"},
            faultInjection={
                "delay": {"percent": 1, "duration": "1s"},
                "abort": {"percent": 100, "status": 503},
            },
        ),
        _policy("cart", "maglev"),
        _policy("redis", "ring_hash"),
    ),
    revision=42,
)


@pytest.mark.parametrize(
    "instance", ["cart-1", "pay-1", "pay-3", "pay-4", "redis-1", "ledger-1", "job-1"]
)
def test_the_core_accepts_every_sidecars_snapshot(instance: str) -> None:
    snapshot = build_snapshot(MESH, instance)
    proxy = _core.Proxy("{}")
    assert proxy.apply(json.dumps(snapshot)) == 42


def test_the_snapshot_carries_regexes_filters_mirrors_and_timeouts() -> None:
    snapshot = build_snapshot(MESH, "cart-1")
    [outbound] = [lst for lst in snapshot["listeners"] if lst["name"] == "outbound"]
    [payment] = [v for v in outbound["routes"] if v["name"] == "payment.default"]
    rules = payment["rules"]
    assert [r["matches"][0]["path"]["type"] for r in rules] == [
        "Exact",
        "PathPrefix",
        "RegularExpression",
        "PathPrefix",
    ]
    assert set(rules[1]["filters"]) == {
        "request_headers",
        "response_headers",
        "url_rewrite",
        "request_mirror",
    }
    assert rules[1]["timeouts"] == {"request": "10s", "backend_request": "1500ms"}
    assert rules[1]["retry"] == {"attempts": 3, "codes": [502, 503], "backoff": "50ms"}
    clusters = {c["name"]: c for c in snapshot["clusters"]}
    assert clusters["payment.default"]["fault"]["abort"] == {"percent": 100, "status": 503}
    assert clusters["payment.default"]["local_zone"] == "zone-a"
    assert clusters["redis.default"]["lb"] == "ring_hash"
    assert rules[2]["timeouts"] == {"request": "24h", "backend_request": "24h"}
    assert rules[2]["backends"][0]["filters"]["url_rewrite"]["path"]["value"] == "/v1"


def test_the_core_refuses_what_validation_would() -> None:
    snapshot = build_snapshot(MESH, "cart-1")
    [outbound] = [lst for lst in snapshot["listeners"] if lst["name"] == "outbound"]
    [payment] = [v for v in outbound["routes"] if v["name"] == "payment.default"]
    index = outbound["routes"].index(payment)
    payment["rules"][2]["matches"][0]["path"]["value"] = "/(?=v)v1"
    with pytest.raises(_core.ConfigError) as refused:
        _core.Proxy("{}").apply(json.dumps(snapshot))
    listener_index = snapshot["listeners"].index(outbound)
    assert refused.value.path == (
        f"listeners[{listener_index}].routes[{index}].rules[2].matches[0].path"
    )
    assert "look-around" in str(refused.value)


def test_the_core_accepts_an_empty_mesh() -> None:
    lonely = MeshState(
        instances=(_inst("x", "x", "10.0.0.1", namespace="Bad_Namespace", app_port=None),),
        revision=1,
    )
    assert _core.Proxy("{}").apply(json.dumps(build_snapshot(lonely, "x"))) == 1


def test_the_core_accepts_the_next_revision() -> None:
    proxy = _core.Proxy("{}")
    assert proxy.apply(json.dumps(build_snapshot(MESH, "cart-1"))) == 42
    drained = replace(
        MESH,
        instances=tuple(replace(i, state="draining") for i in MESH.instances),
        revision=43,
    )
    assert proxy.apply(json.dumps(build_snapshot(drained, "cart-1"))) == 43


@pytest.mark.parametrize("mtls", MTLS_MODES)
@pytest.mark.parametrize("instance", ["cart-1", "pay-3", "redis-1"])
def test_the_core_accepts_mtls_snapshots(instance: str, mtls: MtlsMode) -> None:
    state = replace(MESH, identity=MeshIdentity(trust_domain="meshpy.local", mtls=mtls))
    snapshot = build_snapshot(state, instance)
    assert _core.Proxy("{}").apply(json.dumps(snapshot)) == 42


@pytest.mark.parametrize("mtls", [None, "strict"])
@pytest.mark.parametrize("instance", ["cart-1", "pay-3", "job-1"])
def test_the_dataplane_check_accepts_it(instance: str, mtls: MtlsMode | None) -> None:
    from meshpy.dataplane import check_snapshot

    identity = MeshIdentity(trust_domain="meshpy.local", mtls=mtls) if mtls else None
    snapshot = build_snapshot(replace(MESH, identity=identity), instance)
    check_snapshot(snapshot)
    assert _core.Proxy("{}").apply(json.dumps(snapshot)) == 42


def _authz(name: str, targets: list[str], action: str, rules: list[dict[str, Any]]) -> Resource:
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name},
            "spec": {
                "targetRefs": [{"kind": "Service", "name": t} for t in targets],
                "action": action,
                "rules": rules,
            },
        }
    )


AUTHZ_POLICIES = (
    _authz(
        "payment-callers",
        ["payment", "redis"],
        "ALLOW",
        [
            {
                "sources": [
                    {"type": "ServiceAccount", "serviceAccount": {"name": "cart"}},
                    {"type": "ServiceAccount", "serviceAccount": {"namespace": "ops", "name": "*"}},
                    {"type": "SPIFFE", "spiffe": "spiffe://other.org/ns/x/sa/y"},
                ],
                "to": [
                    {"paths": ["/charge", "/refunds/*", "/a%2fb", "/%7Euser"], "methods": ["POST"]},
                    {"paths": ["/*"]},
                    {"methods": ["GET", "HEAD"]},
                ],
            },
            {"sources": []},
            {"to": []},
            {},
        ],
    ),
    _authz("v2-no-refunds", ["payment-v2"], "DENY", [{"to": [{"paths": ["/refunds/*"]}]}]),
    _authz("watch", ["payment", "cart"], "AUDIT", []),
)


@pytest.mark.parametrize("default", AUTHZ_DEFAULTS)
@pytest.mark.parametrize("mtls", [None, *MTLS_MODES])
@pytest.mark.parametrize("instance", ["cart-1", "pay-3", "redis-1"])
def test_the_core_accepts_authorization(
    instance: str, mtls: MtlsMode | None, default: AuthzDefault
) -> None:

    identity = (
        MeshIdentity(trust_domain="meshpy.local", mtls=mtls, authz_default=default)
        if mtls
        else None
    )
    state = replace(MESH, identity=identity, authorization_policies=AUTHZ_POLICIES)
    snapshot = build_snapshot(state, instance)
    [inbound] = [lst for lst in snapshot["listeners"] if lst["name"] == "inbound"]
    assert inbound["authorization"]["policies"], "every instance is targeted"
    assert _core.Proxy("{}").apply(json.dumps(snapshot)) == 42
