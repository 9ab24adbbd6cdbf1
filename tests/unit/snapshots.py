"""The shop mesh that snapshot tests build from, resources to add, lookups in a snapshot."""

from __future__ import annotations

from typing import Any

from meshpy.resources import Resource, parse
from meshpy.snapshot import InstanceInfo, MeshState, ServiceInfo

CATCH_ALL = [{"path": {"type": "PathPrefix", "value": "/"}}]


def inst(
    id: str,
    service: str,
    address: str,
    *,
    namespace: str = "default",
    version: str | None = None,
    state: str = "healthy",
    inbound_port: int = 15006,
    app_port: int | None = 8080,
) -> InstanceInfo:
    return InstanceInfo(
        id=id,
        namespace=namespace,
        service=service,
        version=version,
        address=address,
        inbound_port=inbound_port,
        app_port=app_port,
        state=state,  # type: ignore[arg-type]
    )


SHOP = MeshState(
    services=(
        ServiceInfo(namespace="default", name="cart"),
        ServiceInfo(namespace="default", name="payment"),
        ServiceInfo(namespace="default", name="redis", protocol="tcp"),
        ServiceInfo(namespace="billing", name="ledger"),
    ),
    instances=(
        inst("cart-1", "cart", "10.0.0.2"),
        inst("pay-1", "payment", "10.0.0.5", version="v1"),
        inst("pay-2", "payment", "10.0.0.6", version="v1"),
        inst("pay-3", "payment", "10.0.0.7", version="v2"),
        inst("redis-1", "redis", "10.0.0.9", inbound_port=16379),
        inst("ledger-1", "ledger", "10.0.1.4", namespace="billing"),
    ),
    revision=42,
)


def route(spec: dict[str, Any], *, name: str = "r", namespace: str = "default") -> Resource:
    return parse(
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def to_payment(*rules: dict[str, Any], name: str = "r", namespace: str = "default") -> Resource:
    parent = {"kind": "Service", "name": "payment", "namespace": "default"}
    return route({"parentRefs": [parent], "rules": list(rules)}, name=name, namespace=namespace)


def backend_policy(target: str, lb: str, namespace: str = "default") -> Resource:
    load_balancer: dict[str, Any] = {"type": lb}
    if lb in ("ring_hash", "maglev"):
        load_balancer["hashOn"] = {"header": "x-user"}
    return parse(
        {
            "apiVersion": "policy.meshpy.io/v1alpha1",
            "kind": "BackendPolicy",
            "metadata": {"name": f"{target}-{lb.replace('_', '-')}", "namespace": namespace},
            "spec": {
                "targetRefs": [{"kind": "Service", "name": target}],
                "loadBalancer": load_balancer,
            },
        }
    )


def listener(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [lst for lst in snapshot["listeners"] if lst["name"] == name]
    return found


def vhost(snapshot: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [v for v in listener(snapshot, "outbound")["routes"] if v["name"] == name]
    return found


def clusters(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in snapshot["clusters"]}


def addresses(cluster: dict[str, Any]) -> list[str]:
    return list(cluster["endpoints"])
