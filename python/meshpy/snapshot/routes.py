"""A snapshot's virtual hosts: each HTTP service's rules, from the HTTPRoutes attached to it.

A virtual host without HTTPRoutes has one rule to its own cluster; once accepted routes
attach to the service (GAMMA), only their rules apply, in the order of ``state.routes``
(creation order) and then rule order, and the core answers 404 when none matches. A
backendRef to a missing service goes to an empty cluster of that name (the core answers
503), one that cannot be resolved (another namespace, not a Service) to the empty
cluster ``unresolved-backend``; weights are kept.

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

Not sent to the data plane: ``parentRefs[].port`` (a route applies to every port of its
Service). ``rule_origins`` says which HTTPRoute rule each rule of a virtual host comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from meshpy import proxyconfig
from meshpy.durations import format_duration
from meshpy.resources import (
    HTTPHeaderFilter,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    HTTPRouteSpec,
    HTTPRouteTimeouts,
    Resource,
)
from meshpy.resources._common import BackendObjectReference, is_dns_label
from meshpy.resources.httproute import refused_regular_expressions
from meshpy.resources.status import backend_problem
from meshpy.snapshot.clusters import UNRESOLVED_CLUSTER, cluster_name, empty_cluster
from meshpy.snapshot.state import MeshService

__all__ = ["RuleOrigin", "rule_origins", "virtual_hosts"]

_NO_TIMEOUT = timedelta(hours=24)
_RETRY_ATTEMPTS = 2
"""Retries of a rule whose ``retry`` leaves ``attempts`` out (the Gateway API leaves it to us)."""
_RETRY_BACKOFF = timedelta(milliseconds=25)


def virtual_hosts(
    routes: tuple[Resource, ...],
    services: Mapping[tuple[str, str], MeshService],
    namespace: str,
    clusters: dict[str, proxyconfig.Cluster],
) -> list[proxyconfig.VirtualHost]:
    """The outbound listener's virtual hosts as sidecars in ``namespace`` see them; the
    empty clusters their backends need are added to ``clusters``."""
    attached = _attached_routes(routes, services, namespace)
    vhosts: list[proxyconfig.VirtualHost] = []
    for ns, name in sorted(services):
        if services[(ns, name)].protocol == "tcp":
            continue
        service_routes = attached.get((ns, name), [])
        rules: list[proxyconfig.RouteRule]
        if service_routes:
            rules = [
                _rule(rule, route.effective_namespace, services, clusters)
                for route, _, rule in _served_rules(service_routes)
            ]
        else:
            catch_all: proxyconfig.RouteMatch = {"path": {"type": "PathPrefix", "value": "/"}}
            backend: proxyconfig.WeightedBackend = {"cluster": cluster_name(ns, name), "weight": 1}
            rules = [{"matches": [catch_all], "backends": [backend]}]
        hosts = [name] if ns == namespace else []
        hosts += [f"{name}.{ns}", f"{name}.{ns}.svc"]
        vhosts.append({"name": cluster_name(ns, name), "hosts": hosts, "rules": rules})
    if not vhosts:
        vhosts.append({"name": "no-services", "hosts": ["*"], "rules": []})
    return vhosts


@dataclass(frozen=True)
class RuleOrigin:
    """Where a rule of a service's virtual host comes from."""

    route: Resource | None
    """The HTTPRoute; None for the rule of a service no route attaches to (its own cluster)."""
    index: int
    """The rule's index in the route's ``spec.rules`` (0 without a route)."""


def rule_origins(
    routes: tuple[Resource, ...],
    services: Mapping[tuple[str, str], MeshService],
    namespace: str,
    service: tuple[str, str],
) -> list[RuleOrigin]:
    """Where each rule of ``service``'s virtual host comes from, in the order
    ``virtual_hosts`` gives them to sidecars in ``namespace``."""
    service_routes = _attached_routes(routes, services, namespace).get(service)
    if not service_routes:
        return [RuleOrigin(None, 0)]
    return [RuleOrigin(route, index) for route, index, _ in _served_rules(service_routes)]


def _served_rules(routes: list[Resource]) -> list[tuple[Resource, int, HTTPRouteRule]]:
    """The rules of ``routes`` that sidecars get, in order, with their route and index."""
    return [
        (route, index, rule)
        for route in routes
        if isinstance(route.spec, HTTPRouteSpec)
        for index, rule in enumerate(route.spec.rules)
        if not refused_regular_expressions(rule)
    ]


def _attached_routes(
    routes: tuple[Resource, ...],
    services: Mapping[tuple[str, str], MeshService],
    sidecar_namespace: str,
) -> dict[tuple[str, str], list[Resource]]:
    """Accepted routes per service, as this sidecar sees them.

    A route in the service's namespace is a producer route and applies to every client; one
    in another namespace is a consumer route and applies only to clients in that namespace,
    instead of the producer routes (GEP-1426).
    """
    producer: dict[tuple[str, str], list[Resource]] = {}
    consumer: dict[tuple[str, str], list[Resource]] = {}
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
                producer.setdefault(key, []).append(route)
            elif route_ns == sidecar_namespace:
                consumer.setdefault(key, []).append(route)
    return {key: consumer.get(key) or producer[key] for key in producer.keys() | consumer.keys()}


def _rule(
    rule: HTTPRouteRule,
    route_ns: str,
    services: Mapping[tuple[str, str], MeshService],
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
        backends = [{"cluster": empty_cluster(UNRESOLVED_CLUSTER, clusters), "weight": 1}]
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
    services: Mapping[tuple[str, str], MeshService],
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
    services: Mapping[tuple[str, str], MeshService],
    clusters: dict[str, proxyconfig.Cluster],
) -> str:
    problem = backend_problem(ref, route_ns, services.keys())
    if problem is None:
        return cluster_name(route_ns, ref.name)
    if problem[0] == "BackendNotFound" and is_dns_label(ref.name):
        return empty_cluster(cluster_name(route_ns, ref.name), clusters)
    return empty_cluster(UNRESOLVED_CLUSTER, clusters)


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
