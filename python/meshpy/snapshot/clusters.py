"""A snapshot's clusters: one per service and version service, with its BackendPolicy and mTLS.

A cluster ``<name>.<namespace>`` names the service it is (the destination of the edge metrics)
and holds the ``healthy`` instances' ``address:inbound_port``
(starting, unhealthy and draining ones are left out). It takes its service's BackendPolicy
(the oldest one targeting the service, else the one of the service a version service
belongs to): ``lb`` (``peak_ewma`` without a policy), ``hash_on``, ``outlier_detection``,
``circuit_breakers`` (from ``connectionLimits``), ``retry_budget`` (20% and 10/s unless
told otherwise; the core applies that default too), ``slow_start`` and ``fault``.
Endpoints of instances registered with a zone carry it, and the sidecar's own zone is
every service cluster's ``local_zone``, so the core prefers endpoints of the caller's
zone while any of them is available.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshpy import proxyconfig
from meshpy.ca.spiffeid import workload_id
from meshpy.durations import format_duration
from meshpy.resources import BackendPolicySpec, Resource
from meshpy.resources.backendpolicy import FaultInjection, OutlierDetection
from meshpy.snapshot.state import MeshService, MeshState

__all__ = [
    "LOCAL_APP_CLUSTER",
    "UNRESOLVED_CLUSTER",
    "backend_policies",
    "cluster_name",
    "empty_cluster",
    "new_cluster",
    "service_clusters",
]

LOCAL_APP_CLUSTER = "local-app"
"""The cluster of the sidecar's own app (no '.', so never a service's cluster)."""
UNRESOLVED_CLUSTER = "unresolved-backend"
"""The empty cluster that backendRefs which cannot be resolved are sent to."""

_DEFAULT_LB: proxyconfig.LbPolicy = "peak_ewma"


def cluster_name(namespace: str, name: str) -> str:
    """``payment.default``: a service's cluster, and its virtual host's name."""
    return f"{name}.{namespace}"


def service_clusters(state: MeshState, zone: str | None) -> dict[str, proxyconfig.Cluster]:
    """Every service's and version service's cluster, by name, ``local_zone`` ``zone``."""
    services = state.service_index()
    policies = backend_policies(state)
    mtls = state.mtls
    clusters: dict[str, proxyconfig.Cluster] = {}
    for (ns, name), service in services.items():
        cluster = new_cluster(cluster_name(ns, name), _endpoints(service.endpoints))
        cluster["service"] = _service_ref(ns, name, service)
        policy = policies.get((ns, name))
        if policy is not None and isinstance(policy.spec, BackendPolicySpec):
            _apply_policy(cluster, policy.spec)
        if zone is not None:
            cluster["local_zone"] = zone
        if mtls is not None:
            # A version service's endpoints are instances of its parent, with its identity.
            cluster["tls"] = {
                "identity": workload_id(mtls.trust_domain, ns, service.parent or name)
            }
        clusters[cluster_name(ns, name)] = cluster
    return clusters


def _service_ref(namespace: str, name: str, service: MeshService) -> proxyconfig.ServiceRef:
    """The service a cluster's requests are counted to: a version service is its parent's
    version (``payment-v2``: ``payment``, ``v2``)."""
    if service.parent is None:
        return {"namespace": namespace, "service": name}
    version = name.removeprefix(f"{service.parent}-")
    return {"namespace": namespace, "service": service.parent, "version": version}


def new_cluster(
    name: str, endpoints: list[proxyconfig.Endpoint], lb: proxyconfig.LbPolicy = _DEFAULT_LB
) -> proxyconfig.Cluster:
    """A cluster with only what every cluster has."""
    return {"name": name, "endpoints": endpoints, "lb": lb, "protocol": "http1"}


def _endpoints(zones: Mapping[str, str | None]) -> list[proxyconfig.Endpoint]:
    """Sorted endpoints: ``"ip:port"`` (weight 1), or ``{address, zone}`` for one in a zone."""
    return [
        address if zone is None else {"address": address, "zone": zone}
        for address, zone in sorted(zones.items())
    ]


def empty_cluster(name: str, clusters: dict[str, proxyconfig.Cluster]) -> str:
    """The name of a cluster without endpoints (the core answers 503), added if absent."""
    clusters.setdefault(name, new_cluster(name, [], _DEFAULT_LB))
    return name


def backend_policies(state: MeshState) -> dict[tuple[str, str], Resource]:
    """The BackendPolicy in force for each service that has one: the oldest policy
    targeting it, else its parent's (a version service follows its service)."""
    services = state.service_index()
    chosen: dict[tuple[str, str], Resource] = {}
    for policy in state.backend_policies:
        if not isinstance(policy.spec, BackendPolicySpec):
            continue
        for target in policy.spec.target_refs:
            chosen.setdefault((policy.effective_namespace, target.name), policy)
    for (ns, name), service in services.items():
        if (ns, name) not in chosen and service.parent and (ns, service.parent) in chosen:
            chosen[(ns, name)] = chosen[(ns, service.parent)]
    return chosen


def _apply_policy(out: proxyconfig.Cluster, spec: BackendPolicySpec) -> None:
    """Set a BackendPolicy spec's cluster fields (``lb``, ``hash_on``, ...) on ``out``."""
    out["lb"] = spec.load_balancer.type
    hash_on = spec.load_balancer.hash_on
    if hash_on is not None:
        if hash_on.header is not None:
            out["hash_on"] = {"header": hash_on.header}
        elif hash_on.cookie is not None:
            out["hash_on"] = {"cookie": hash_on.cookie}
        else:
            out["hash_on"] = {"source_ip": True}
    if spec.outlier_detection is not None:
        out["outlier_detection"] = _outlier_detection(spec.outlier_detection)
    limits = spec.connection_limits
    if limits is not None:
        breakers: proxyconfig.CircuitBreakers = {}
        if limits.max_connections is not None:
            breakers["max_connections"] = limits.max_connections
        if limits.max_pending_requests is not None:
            breakers["max_pending_requests"] = limits.max_pending_requests
        if limits.max_requests is not None:
            breakers["max_requests"] = limits.max_requests
        if breakers:
            out["circuit_breakers"] = breakers
    out["retry_budget"] = {
        "percent": spec.retry_budget.percent,
        "min_retries_per_second": spec.retry_budget.min_retries_per_second,
    }
    if spec.slow_start is not None:
        out["slow_start"] = {"window": format_duration(spec.slow_start.window)}
    if spec.fault_injection is not None:
        out["fault"] = _fault(spec.fault_injection)


def _outlier_detection(outlier: OutlierDetection) -> proxyconfig.OutlierDetection:
    out: proxyconfig.OutlierDetection = {
        "interval": format_duration(outlier.interval),
        "base_ejection_time": format_duration(outlier.base_ejection_time),
        "max_ejection_percent": outlier.max_ejection_percent,
    }
    if outlier.consecutive_5xx is not None:
        out["consecutive_5xx"] = outlier.consecutive_5xx
    if outlier.consecutive_gateway_errors is not None:
        out["consecutive_gateway_errors"] = outlier.consecutive_gateway_errors
    return out


def _fault(fault: FaultInjection) -> proxyconfig.Fault:
    out: proxyconfig.Fault = {}
    if fault.delay is not None:
        out["delay"] = {
            "percent": fault.delay.percent,
            "duration": format_duration(fault.delay.duration),
        }
    if fault.abort is not None:
        out["abort"] = {"percent": fault.abort.percent, "status": fault.abort.status}
    return out
