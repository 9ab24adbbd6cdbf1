"""Registry state to one sidecar's proxy snapshot: a pure function, no I/O.

``build_snapshot(state, instance_id)`` returns the JSON document that the sidecar's core
takes in ``Proxy.apply``:

- an ``outbound`` HTTP listener (the app's ``HTTP_PROXY``) that routes by ``Host``: every
  HTTP service of the mesh is a virtual host (``payment.default``, ``payment.default.svc``,
  and plain ``payment`` from the sidecar's own namespace), and so is every version service
  (``payment-v2`` for the instances of ``payment`` with version v2);
- a virtual host without HTTPRoutes has one rule to its own cluster; once accepted routes
  attach to the service (GAMMA), only their rules apply, in the order of ``state.routes``
  (creation order) and then rule order, and the core answers 404 when none matches;
- a cluster ``<name>.<namespace>`` per service and version service, whose endpoints are the
  ``healthy`` instances' ``address:inbound_port`` (starting, unhealthy and draining ones are
  left out); a backendRef to a missing service goes to an empty cluster of that name (the
  core answers 503), one that cannot be resolved (another namespace, not a Service) to the
  empty cluster ``unresolved-backend``; weights are kept;
- a TCP listener ``upstream-<port>`` on 127.0.0.1 for each upstream the sidecar asked
  for (``SidecarPorts.upstreams``: ``meshpy run --upstream payment-db=5433``);
- for the sidecar's own instance, an ``inbound`` listener on its inbound port to the
  ``local-app`` cluster at ``127.0.0.1:<app_port>`` (none without an app port);
- the inbound listener's ``authorization``, from the AuthorizationPolicies that target the
  instance's service or its version service (``meshpy.authz``): sources become SPIFFE IDs
  of the mesh's trust domain, and the mesh default (``MeshIdentity.authz_default``, or
  all-unauthenticated without an identity) decides when no policy does; left out when
  there is nothing to enforce;
- with a mesh identity (``MeshState.identity``), mutual TLS between sidecars: the inbound
  listener terminates mTLS (``strict``: nothing else; ``permissive``: plaintext too), and
  every service cluster connects with mTLS and expects the service's SPIFFE identity
  ``spiffe://<trust domain>/ns/<namespace>/sa/<service>`` (a version service's instances
  carry the identity of the service they are a version of). Mode ``disabled`` (or no
  identity) keeps sidecars in plaintext.

Equal states give equal snapshots, byte for byte once dumped: everything is sorted except
route rules, whose order is meaningful.

Route rules are sent with their matches (RegularExpression ones too: Rust ``regex`` syntax,
matched against the whole path or value, as validation checks), their RequestHeaderModifier,
ResponseHeaderModifier and URLRewrite filters (``filters.request_headers``,
``response_headers``, ``url_rewrite``; a backendRef's own filters go on its backend) and
both timeouts: ``timeouts.request`` ("0s": 24h, the longest the core is given) bounds the
whole request, ``timeouts.backend_request`` ("0s": left out) one request to an endpoint;
without ``request`` the listener's 15 s still bounds the whole. A rule whose regular
expression the core refuses (only in routes stored before validation checked them) is left
out, and the route's status says PartiallyInvalid, or not Accepted when no rule is left.

Rules also carry ``retry`` (``attempts``, 2 when left out; ``codes``; ``backoff``, 25 ms when
left out; each try bounded by ``timeouts.backend_request``) and RequestMirror filters
(``filters.request_mirror``: the mirror backend's cluster, resolved like a backendRef, and
``percent``, from ``percent`` or ``fraction``, 100 when neither is given).

A cluster takes its service's BackendPolicy (the oldest one targeting the service, else the
one of the service a version service belongs to): ``lb`` (``peak_ewma`` without a policy),
``hash_on``, ``outlier_detection``, ``circuit_breakers`` (from ``connectionLimits``),
``retry_budget`` (20% and 10/s unless told otherwise; the core applies that default too),
``slow_start`` and ``fault``. Endpoints of instances registered with a zone carry it, and
the sidecar's own zone is every service cluster's ``local_zone``, so the core prefers
endpoints of the caller's zone while any of them is available.

Not sent to the data plane: ``parentRefs[].port`` (a route applies to every port of its
Service) and instance labels.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from meshpy import proxyconfig
from meshpy.authz import AuthzDefault, inbound_authorization
from meshpy.ca.spiffeid import workload_id
from meshpy.durations import format_duration
from meshpy.errors import MeshpyError
from meshpy.resources import (
    BackendPolicySpec,
    HTTPHeaderFilter,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    HTTPRouteSpec,
    HTTPRouteTimeouts,
    Resource,
)
from meshpy.resources._common import BackendObjectReference, is_dns_label
from meshpy.resources.backendpolicy import FaultInjection, OutlierDetection
from meshpy.resources.httproute import refused_regular_expressions
from meshpy.resources.status import backend_problem

__all__ = [
    "LOCAL_APP_CLUSTER",
    "MTLS_MODES",
    "UNRESOLVED_CLUSTER",
    "InstanceInfo",
    "MeshIdentity",
    "MeshState",
    "MtlsMode",
    "Part",
    "ServiceInfo",
    "SidecarPorts",
    "UnknownInstanceError",
    "Upstream",
    "build_inbound",
    "build_outbound",
    "build_snapshot",
    "build_upstreams",
    "version_service_name",
]

LOCAL_APP_CLUSTER = "local-app"
"""The cluster of the sidecar's own app (no '.', so never a service's cluster)."""
UNRESOLVED_CLUSTER = "unresolved-backend"
"""The empty cluster that backendRefs which cannot be resolved are sent to."""

_NO_TIMEOUT = timedelta(hours=24)
_DEFAULT_LB: proxyconfig.LbPolicy = "peak_ewma"
_RETRY_ATTEMPTS = 2
"""Retries of a rule whose ``retry`` leaves ``attempts`` out (the Gateway API leaves it to us)."""
_RETRY_BACKOFF = timedelta(milliseconds=25)

MtlsMode = Literal["strict", "permissive", "disabled"]
MTLS_MODES: tuple[MtlsMode, ...] = ("strict", "permissive", "disabled")
"""The mesh-wide mTLS modes of sidecar inbound listeners."""


@dataclass(frozen=True, kw_only=True)
class MeshIdentity:
    """The mesh's trust domain, mTLS mode, and who may call a service no policy decides on."""

    trust_domain: str
    mtls: MtlsMode = "strict"
    authz_default: AuthzDefault = "all-unauthenticated"


@dataclass(frozen=True, kw_only=True)
class ServiceInfo:
    """A registered service."""

    namespace: str
    name: str
    protocol: Literal["http", "grpc", "tcp"] = "http"
    """grpc: HTTP routed like http, and the app is reached over HTTP/2 (h2c)."""
    ports: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class InstanceInfo:
    """A registered instance (one sidecar and its app)."""

    id: str
    namespace: str
    service: str
    version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    address: str
    inbound_port: int
    app_port: int | None = None
    zone: str | None = None
    state: Literal["starting", "healthy", "unhealthy", "draining"] = "starting"


@dataclass(frozen=True, kw_only=True)
class MeshState:
    """Everything a snapshot is built from; ``routes`` and policies in creation order."""

    services: tuple[ServiceInfo, ...] = ()
    instances: tuple[InstanceInfo, ...] = ()
    routes: tuple[Resource, ...] = ()
    backend_policies: tuple[Resource, ...] = ()
    authorization_policies: tuple[Resource, ...] = ()
    revision: int = 0
    identity: MeshIdentity | None = None

    @property
    def mtls(self) -> MeshIdentity | None:
        """The identity settings when sidecars talk to each other over mutual TLS, else None."""
        if self.identity is None or self.identity.mtls == "disabled":
            return None
        return self.identity

    def service_keys(self) -> frozenset[tuple[str, str]]:
        """Every existing ``(namespace, name)``, version services included (for statuses)."""
        return frozenset(self.service_index())

    def service_index(self) -> Mapping[tuple[str, str], _Service]:
        """Services, version services included, with their endpoints; computed once per state."""
        cached: dict[tuple[str, str], _Service] | None = self.__dict__.get("_service_index")
        if cached is None:
            cached = _services(self)
            # A frozen dataclass still has a __dict__: memoise without __setattr__.
            self.__dict__["_service_index"] = cached
        return cached

    def instance(self, instance_id: str) -> InstanceInfo:
        """The instance with this id; raises UnknownInstanceError."""
        index: dict[str, InstanceInfo] | None = self.__dict__.get("_instance_index")
        if index is None:
            index = {i.id: i for i in self.instances}
            self.__dict__["_instance_index"] = index
        try:
            return index[instance_id]
        except KeyError:
            raise UnknownInstanceError(instance_id) from None


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


class UnknownInstanceError(MeshpyError, LookupError):
    """No instance with the given id is registered."""


def version_service_name(service: str, version: str | None) -> str | None:
    """``payment`` + ``v2`` -> ``payment-v2``; None when there is no valid such name."""
    if not version:
        return None
    name = f"{service}-{version}"
    return name if is_dns_label(name) else None


@dataclass
class _Service:
    protocol: str
    parent: str | None = None
    endpoints: dict[str, str | None] = field(default_factory=dict)
    """``address:port`` -> zone of the instance (None when it has none)."""


def _services(state: MeshState) -> dict[tuple[str, str], _Service]:
    services: dict[tuple[str, str], _Service] = {}
    for info in state.services:
        if is_dns_label(info.namespace) and is_dns_label(info.name):
            services[(info.namespace, info.name)] = _Service(info.protocol)
    for inst in state.instances:
        if not (is_dns_label(inst.namespace) and is_dns_label(inst.service)):
            continue
        base = services.setdefault((inst.namespace, inst.service), _Service("http"))
        endpoint = _endpoint(inst)
        names = [inst.service]
        version = version_service_name(inst.service, inst.version)
        if version is not None:
            services.setdefault((inst.namespace, version), _Service(base.protocol, inst.service))
            names.append(version)
        if endpoint is not None:
            for name in names:
                services[(inst.namespace, name)].endpoints[endpoint] = inst.zone
    return services


def _endpoint(inst: InstanceInfo) -> str | None:
    if inst.state != "healthy" or not 0 < inst.inbound_port < 65536:
        return None
    try:
        ip = ipaddress.ip_address(inst.address)
    except ValueError:
        return None
    if ip.is_unspecified:
        return None
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{host}:{inst.inbound_port}"


def _cluster_name(namespace: str, name: str) -> str:
    return f"{name}.{namespace}"


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
    return {
        "version": state.revision,
        "listeners": [*inbound.listeners, *outbound.listeners, *upstreams],
        "clusters": [clusters[name] for name in sorted(clusters)],
    }


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
    policies = _backend_policies(state.backend_policies, services)
    mtls = state.mtls
    clusters: dict[str, proxyconfig.Cluster] = {}
    for (ns, name), service in services.items():
        cluster = _cluster(_cluster_name(ns, name), _endpoints(service.endpoints))
        policy = policies.get((ns, name))
        if policy is not None:
            _apply_policy(cluster, policy)
        if zone is not None:
            cluster["local_zone"] = zone
        if mtls is not None:
            # A version service's endpoints are instances of its parent, with its identity.
            cluster["tls"] = {
                "identity": workload_id(mtls.trust_domain, ns, service.parent or name)
            }
        clusters[_cluster_name(ns, name)] = cluster

    attached = _attached_routes(state.routes, services, namespace)
    vhosts: list[proxyconfig.VirtualHost] = []
    for ns, name in sorted(services):
        if services[(ns, name)].protocol == "tcp":
            continue
        routes = attached.get((ns, name), [])
        rules: list[proxyconfig.RouteRule]
        if routes:
            rules = [
                _rule(rule, route_ns, services, clusters)
                for route_ns, spec in routes
                for rule in spec.rules
                if not refused_regular_expressions(rule)
            ]
        else:
            catch_all: proxyconfig.RouteMatch = {"path": {"type": "PathPrefix", "value": "/"}}
            backend: proxyconfig.WeightedBackend = {"cluster": _cluster_name(ns, name), "weight": 1}
            rules = [{"matches": [catch_all], "backends": [backend]}]
        hosts = [name] if ns == namespace else []
        hosts += [f"{name}.{ns}", f"{name}.{ns}.svc"]
        vhosts.append({"name": _cluster_name(ns, name), "hosts": hosts, "rules": rules})
    if not vhosts:
        vhosts.append({"name": "no-services", "hosts": ["*"], "rules": []})
    listener: proxyconfig.Listener = {
        "name": "outbound",
        "address": f"{_host(ports.outbound_host)}:{ports.outbound}",
        "protocol": "http",
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
                "cluster": _cluster_name(*key),
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
    cluster = _cluster(LOCAL_APP_CLUSTER, [f"127.0.0.1:{own.app_port}"], "round_robin")
    if own_service is not None and own_service.protocol == "grpc":
        cluster["protocol"] = "http2"
    return Part([listener], [cluster])


def _cluster(
    name: str, endpoints: list[proxyconfig.Endpoint], lb: proxyconfig.LbPolicy = _DEFAULT_LB
) -> proxyconfig.Cluster:
    return {"name": name, "endpoints": endpoints, "lb": lb, "protocol": "http1"}


def _endpoints(zones: Mapping[str, str | None]) -> list[proxyconfig.Endpoint]:
    """Sorted endpoints: ``"ip:port"`` (weight 1), or ``{address, zone}`` for one in a zone."""
    return [
        address if zone is None else {"address": address, "zone": zone}
        for address, zone in sorted(zones.items())
    ]


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


def _backend_policies(
    policies: tuple[Resource, ...], services: Mapping[tuple[str, str], _Service]
) -> dict[tuple[str, str], BackendPolicySpec]:
    """Each service's BackendPolicy: the oldest policy targeting it, else its parent's (a
    version service follows its service)."""
    chosen: dict[tuple[str, str], BackendPolicySpec] = {}
    for policy in policies:
        if not isinstance(policy.spec, BackendPolicySpec):
            continue
        for target in policy.spec.target_refs:
            chosen.setdefault((policy.effective_namespace, target.name), policy.spec)
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


def _attached_routes(
    routes: tuple[Resource, ...],
    services: Mapping[tuple[str, str], _Service],
    sidecar_namespace: str,
) -> dict[tuple[str, str], list[tuple[str, HTTPRouteSpec]]]:
    """Accepted routes (namespace and spec) per service, as this sidecar sees them.

    A route in the service's namespace is a producer route and applies to every client; one
    in another namespace is a consumer route and applies only to clients in that namespace,
    instead of the producer routes (GEP-1426).
    """
    producer: dict[tuple[str, str], list[tuple[str, HTTPRouteSpec]]] = {}
    consumer: dict[tuple[str, str], list[tuple[str, HTTPRouteSpec]]] = {}
    for route in routes:
        spec = route.spec
        if not isinstance(spec, HTTPRouteSpec):
            continue
        if all(refused_regular_expressions(rule) for rule in spec.rules):
            continue  # not accepted: nothing the data plane can serve
        route_ns = route.effective_namespace
        seen: set[tuple[str, str]] = set()
        for ref in spec.parent_refs:
            key = (ref.namespace or route_ns, ref.name)
            if key not in services or key in seen:
                continue
            seen.add(key)
            if key[0] == route_ns:
                producer.setdefault(key, []).append((route_ns, spec))
            elif route_ns == sidecar_namespace:
                consumer.setdefault(key, []).append((route_ns, spec))
    return {key: consumer.get(key) or producer[key] for key in producer.keys() | consumer.keys()}


def _rule(
    rule: HTTPRouteRule,
    route_ns: str,
    services: Mapping[tuple[str, str], _Service],
    clusters: dict[str, proxyconfig.Cluster],
) -> proxyconfig.RouteRule:
    backends: list[proxyconfig.WeightedBackend] = []
    for ref in rule.backend_refs:
        backend: proxyconfig.WeightedBackend = {
            "cluster": _backend_cluster(ref, route_ns, services, clusters),
            "weight": ref.weight,
        }
        backend_filters = _filters(ref.filters, route_ns, services, clusters)
        if backend_filters:
            backend["filters"] = backend_filters
        backends.append(backend)
    if not backends:  # the Gateway API answers 500 here; an empty cluster gets 503
        backends = [{"cluster": _empty_cluster(UNRESOLVED_CLUSTER, clusters), "weight": 1}]
    out: proxyconfig.RouteRule = {
        "matches": [_match(m) for m in rule.matches],
        "backends": backends,
    }
    filters = _filters(rule.filters, route_ns, services, clusters)
    if filters:
        out["filters"] = filters
    timeouts = _timeouts(rule.timeouts)
    if timeouts:
        out["timeouts"] = timeouts
    if rule.retry is not None:
        out["retry"] = {
            "attempts": _RETRY_ATTEMPTS if rule.retry.attempts is None else rule.retry.attempts,
            "codes": sorted(set(rule.retry.codes)),
            "backoff": format_duration(rule.retry.backoff or _RETRY_BACKOFF),
        }
    return out


def _filters(
    filters: list[HTTPRouteFilter],
    route_ns: str,
    services: Mapping[tuple[str, str], _Service],
    clusters: dict[str, proxyconfig.Cluster],
) -> proxyconfig.RouteFilters:
    """The data plane's filters of a rule or backendRef."""
    out: proxyconfig.RouteFilters = {}
    for f in filters:
        if f.request_mirror is not None:
            mirror = f.request_mirror
            percent: float = 100
            if mirror.percent is not None:
                percent = mirror.percent
            elif mirror.fraction is not None:
                percent = 100 * mirror.fraction.numerator / mirror.fraction.denominator
            out["request_mirror"] = {
                "cluster": _backend_cluster(mirror.backend_ref, route_ns, services, clusters),
                "percent": percent,
            }
            continue
        if f.request_header_modifier is not None:
            out["request_headers"] = _header_modifier(f.request_header_modifier)
        elif f.response_header_modifier is not None:
            out["response_headers"] = _header_modifier(f.response_header_modifier)
        elif f.url_rewrite is not None:
            rewrite: proxyconfig.UrlRewrite = {}
            if f.url_rewrite.hostname is not None:
                rewrite["hostname"] = f.url_rewrite.hostname
            path = f.url_rewrite.path
            if path is not None:
                value = (
                    path.replace_full_path
                    if path.type == "ReplaceFullPath"
                    else path.replace_prefix_match
                )
                rewrite["path"] = {"type": path.type, "value": value or ""}
            out["url_rewrite"] = rewrite
    return out


def _header_modifier(modifier: HTTPHeaderFilter) -> proxyconfig.HeaderModifier:
    out: proxyconfig.HeaderModifier = {}
    if modifier.set:
        out["set"] = [{"name": h.name, "value": h.value} for h in modifier.set]
    if modifier.add:
        out["add"] = [{"name": h.name, "value": h.value} for h in modifier.add]
    if modifier.remove:
        out["remove"] = list(modifier.remove)
    return out


def _match(match: HTTPRouteMatch) -> proxyconfig.RouteMatch:
    out: proxyconfig.RouteMatch = {"path": {"type": match.path.type, "value": match.path.value}}
    headers: dict[str, proxyconfig.NameValue] = {}
    for header in match.headers:  # the first of equal (case-insensitive) names counts
        sent: proxyconfig.NameValue = {"name": header.name, "value": header.value}
        if header.type != "Exact":
            sent["type"] = header.type
        headers.setdefault(header.name.lower(), sent)
    if headers:
        out["headers"] = list(headers.values())
    if match.query_params:
        out["query_params"] = [
            {"name": q.name, "value": q.value}
            if q.type == "Exact"
            else {"name": q.name, "value": q.value, "type": q.type}
            for q in match.query_params
        ]
    if match.method is not None:
        out["method"] = match.method
    return out


def _backend_cluster(
    ref: BackendObjectReference,
    route_ns: str,
    services: Mapping[tuple[str, str], _Service],
    clusters: dict[str, proxyconfig.Cluster],
) -> str:
    problem = backend_problem(ref, route_ns, services.keys())
    if problem is None:
        return _cluster_name(route_ns, ref.name)
    if problem[0] == "BackendNotFound" and is_dns_label(ref.name):
        return _empty_cluster(_cluster_name(route_ns, ref.name), clusters)
    return _empty_cluster(UNRESOLVED_CLUSTER, clusters)


def _empty_cluster(name: str, clusters: dict[str, proxyconfig.Cluster]) -> str:
    clusters.setdefault(name, _cluster(name, [], _DEFAULT_LB))
    return name


def _timeouts(timeouts: HTTPRouteTimeouts | None) -> proxyconfig.RuleTimeouts:
    """``request`` ("0s": the longest the core is given) and ``backend_request`` ("0s":
    none), the latter never longer than the former, as the core checks."""
    if timeouts is None:
        return {}
    out: proxyconfig.RuleTimeouts = {}
    request = None
    if timeouts.request is not None:
        request = timeouts.request or _NO_TIMEOUT
        out["request"] = format_duration(request)
    backend = timeouts.backend_request
    if backend:
        out["backend_request"] = format_duration(min(backend, request) if request else backend)
    return out
