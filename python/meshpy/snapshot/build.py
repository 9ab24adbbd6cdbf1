"""A sidecar's snapshot put together: outbound listener, upstreams, its own inbound listener."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from meshpy import proxyconfig
from meshpy.authz import inbound_authorization
from meshpy.resources import TracingPolicySpec
from meshpy.resources._common import is_dns_label
from meshpy.snapshot.clusters import LOCAL_APP_CLUSTER, cluster_name, new_cluster, service_clusters
from meshpy.snapshot.routes import virtual_hosts
from meshpy.snapshot.state import InstanceInfo, MeshState, MeshTracing, version_service_name

__all__ = [
    "Part",
    "SidecarPorts",
    "Upstream",
    "build_inbound",
    "build_metrics",
    "build_outbound",
    "build_snapshot",
    "build_tracing",
    "build_upstreams",
]


@dataclass(frozen=True)
class Upstream:
    """A local TCP port through which the sidecar's app reaches one service."""

    service: str
    port: int
    namespace: str | None = None
    """None: the sidecar's own namespace."""


@dataclass(frozen=True, kw_only=True)
class SidecarPorts:
    """What a sidecar binds locally besides its inbound port (which comes from the instance)."""

    outbound: int = 15001
    outbound_host: str = "127.0.0.1"
    upstreams: tuple[Upstream, ...] = ()


def build_snapshot(
    state: MeshState, instance_id: str, ports: SidecarPorts = SidecarPorts()
) -> proxyconfig.Snapshot:
    """The snapshot for the sidecar of instance ``instance_id``; ``version`` is the revision.

    Raises UnknownInstanceError when no such instance is registered.
    """
    own = state.instance(instance_id)
    outbound = build_outbound(state, own.namespace, ports, zone=own.zone)
    inbound = build_inbound(state, own)
    upstreams = build_upstreams(state, own.namespace, ports)
    clusters = {c["name"]: c for c in outbound.clusters}
    clusters.update((c["name"], c) for c in inbound.clusters)
    snapshot: proxyconfig.Snapshot = {
        "version": state.revision,
        "listeners": [*inbound.listeners, *outbound.listeners, *upstreams],
        "clusters": [clusters[name] for name in sorted(clusters)],
        "metrics": build_metrics(own),
    }
    if state.tracing is not None:
        snapshot["tracing"] = build_tracing(state, own)
    return snapshot


def build_metrics(own: InstanceInfo) -> proxyconfig.Metrics:
    """The labels of the sidecar's edge metrics: its own workload (none for names the
    metrics cannot take, which then say ``unknown``)."""
    if not (is_dns_label(own.namespace) and is_dns_label(own.service)):
        return {}
    workload: proxyconfig.ServiceRef = {"namespace": own.namespace, "service": own.service}
    if own.version and is_dns_label(own.version):
        workload["version"] = own.version
    return {"workload": workload}


def build_tracing(state: MeshState, own: InstanceInfo) -> proxyconfig.Tracing:
    """The sidecar's tracing (``state.tracing`` must be set): its sampling, and its
    instance as the spans' resource. Where spans are sent is added by the sidecar, which
    alone knows how it reaches the control plane."""
    resource = {"service.namespace": own.namespace, "service.instance.id": own.id}
    if own.version:
        resource["service.version"] = own.version
    return {
        "sample_percent": sample_percent(state, own),
        "service": own.service,
        "resource": resource,
    }


def sample_percent(state: MeshState, own: InstanceInfo) -> float:
    """The share of new traces an instance's sidecar samples: the oldest TracingPolicy
    that targets its version service (``payment-v2``), else its service, else the mesh's."""
    targeted: dict[str, float] = {}
    for policy in state.tracing_policies:
        spec = policy.spec
        if isinstance(spec, TracingPolicySpec) and policy.effective_namespace == own.namespace:
            for target in spec.target_refs:
                targeted.setdefault(target.name, spec.sample_percent)
    version = version_service_name(own.service, own.version)
    for name in (version, own.service):
        if name is not None and name in targeted:
            return targeted[name]
    mesh = state.tracing if state.tracing is not None else MeshTracing()
    return mesh.sample_percent


@dataclass(frozen=True)
class Part:
    """Listeners and clusters of one part of a snapshot."""

    listeners: list[proxyconfig.Listener]
    clusters: list[proxyconfig.Cluster]


def build_outbound(
    state: MeshState,
    namespace: str,
    ports: SidecarPorts = SidecarPorts(),
    *,
    zone: str | None = None,
) -> Part:
    """What every sidecar in ``namespace`` (and ``zone``) shares: the outbound listener
    and every cluster, whose ``local_zone`` is ``zone``.

    The control plane builds it once per revision, namespace and zone, not once per sidecar.
    """
    services = state.service_index()
    clusters = service_clusters(state, zone)
    vhosts = virtual_hosts(state.routes, services, namespace, clusters)
    listener: proxyconfig.Listener = {
        "name": "outbound",
        "address": f"{_host(ports.outbound_host)}:{ports.outbound}",
        "protocol": "http",
        "direction": "outbound",
        "routes": vhosts,
    }
    return Part([listener], [clusters[name] for name in sorted(clusters)])


def build_upstreams(
    state: MeshState, namespace: str, ports: SidecarPorts = SidecarPorts()
) -> list[proxyconfig.Listener]:
    """A TCP listener on 127.0.0.1 per upstream the sidecar asked for, to that service's
    cluster (over mTLS like any other). An upstream naming no known service gets no
    listener until the service appears: connecting to its port is refused meanwhile."""
    services = state.service_index()
    listeners: list[proxyconfig.Listener] = []
    for up in sorted(ports.upstreams, key=lambda u: u.port):
        key = (up.namespace or namespace, up.service)
        if key not in services:
            continue
        listeners.append(
            {
                "name": f"upstream-{up.port}",
                "address": f"{_host(ports.outbound_host)}:{up.port}",
                "protocol": "tcp",
                "direction": "outbound",
                "cluster": cluster_name(*key),
            }
        )
    return listeners


def build_inbound(state: MeshState, own: InstanceInfo) -> Part:
    """What is the sidecar's own: the inbound listener to its app, with its mTLS and
    authorization (no listener without an app port)."""
    if own.app_port is None:
        return Part([], [])
    own_service = state.service_index().get((own.namespace, own.service))
    listener: proxyconfig.Listener = {
        "name": "inbound",
        "address": _inbound_address(own),
        "direction": "inbound",
        "protocol": "tcp" if own_service and own_service.protocol == "tcp" else "http",
        "cluster": LOCAL_APP_CLUSTER,
    }
    mtls = state.mtls
    if mtls is not None:  # never "disabled" then
        listener["tls"] = {"mode": "permissive" if mtls.mtls == "permissive" else "strict"}
    version = version_service_name(own.service, own.version)
    services = (own.service,) if version is None else (own.service, version)
    identity = state.identity
    authorization = inbound_authorization(
        state.authorization_policies,
        own.namespace,
        services,
        identity.trust_domain if identity is not None else None,
        identity.authz_default if identity is not None else "all-unauthenticated",
    )
    if authorization is not None:
        listener["authorization"] = authorization
    cluster = new_cluster(LOCAL_APP_CLUSTER, [f"127.0.0.1:{own.app_port}"], "round_robin")
    if own_service is not None and own_service.protocol == "grpc":
        cluster["protocol"] = "http2"
    return Part([listener], [cluster])


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def _inbound_address(inst: InstanceInfo) -> str:
    try:
        ip = ipaddress.ip_address(inst.address)
    except ValueError:
        return f"0.0.0.0:{inst.inbound_port}"
    if ip.is_loopback:
        return f"{_host(str(ip))}:{inst.inbound_port}"
    return f"{'[::]' if ip.version == 6 else '0.0.0.0'}:{inst.inbound_port}"
