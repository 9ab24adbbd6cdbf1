"""Builders of common routing resources; each returns a Resource that went through ``parse``.

A builder writes the document a person would write in YAML and validates it with
``meshpy.resources.parse``, so a bad argument raises the same ResourceError, naming the
same field, as the equivalent bad YAML. Versions name version services: ``"v2"`` of
``payment`` is the Service ``payment-v2``. A route or BackendPolicy is named after its
Service (``name=`` to change it), so rolling from ``canary`` to ``split`` to a plain
route replaces one HTTPRoute; ``allow`` and ``deny`` name their policy ``<service>-allow``
and ``<service>-deny``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from meshpy.resources import (
    KINDS,
    HTTPRouteSpec,
    Resource,
    ResourceError,
    format_gateway_duration,
    parse,
)

__all__ = [
    "ab_test",
    "allow",
    "canary",
    "deny",
    "load_balancer",
    "mirror",
    "retry",
    "route",
    "split",
    "timeout",
]

Duration = str | timedelta
"""A Gateway API duration: text such as "500ms" or "1m30s", or a timedelta."""

_ROUTE = KINDS["httproutes"]
_BACKEND_POLICY = KINDS["backendpolicies"]
_AUTHZ = KINDS["authorizationpolicies"]


def _document(
    api_version: str, kind: str, name: str, namespace: str | None, spec: dict[str, Any]
) -> Resource:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return parse({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec})


def _route(
    service: str, rules: list[dict[str, Any]], *, name: str | None, namespace: str | None
) -> Resource:
    spec = {"parentRefs": [{"group": "", "kind": "Service", "name": service}], "rules": rules}
    return _document(_ROUTE.api_version, _ROUTE.kind, name or service, namespace, spec)


def _backend(service: str, version: str | None, weight: object = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": f"{service}-{version}" if version else service}
    if weight is not None:
        ref["weight"] = weight
    return ref


def route(
    service: str,
    to: str | None = None,
    *,
    name: str | None = None,
    namespace: str | None = None,
) -> Resource:
    """An HTTPRoute sending every request to ``service`` (or its version ``to``)."""
    rules = [{"backendRefs": [_backend(service, to)]}]
    return _route(service, rules, name=name, namespace=namespace)


def canary(
    service: str,
    *,
    stable: str,
    candidate: str,
    weight: int,
    name: str | None = None,
    namespace: str | None = None,
) -> Resource:
    """Send ``weight`` percent of ``service``'s requests to ``candidate``, the rest to ``stable``.

    ``canary("payment", stable="v1", candidate="v2", weight=10)``: payment-v1 weight 90,
    payment-v2 weight 10.
    """
    given: object = weight  # callers without a type checker pass anything
    if isinstance(given, bool) or not isinstance(given, int) or not 0 <= given <= 100:
        raise ResourceError(
            "spec.rules[0].backendRefs[1].weight",
            f"a canary weight is a percentage from 0 to 100, not {weight!r}",
        )
    backends = [_backend(service, stable, 100 - weight), _backend(service, candidate, weight)]
    return _route(service, [{"backendRefs": backends}], name=name, namespace=namespace)


def split(
    service: str,
    weights: Mapping[str, int],
    *,
    name: str | None = None,
    namespace: str | None = None,
) -> Resource:
    """Share ``service``'s requests among versions by weight: ``{"v1": 50, "v2": 50}``."""
    if not weights:
        raise ResourceError("spec.rules[0].backendRefs", "give at least one version and weight")
    backends = [_backend(service, version, weight) for version, weight in weights.items()]
    return _route(service, [{"backendRefs": backends}], name=name, namespace=namespace)


def ab_test(
    service: str,
    *,
    to: str,
    header: tuple[str, str] | Mapping[str, str] | None = None,
    query: tuple[str, str] | Mapping[str, str] | None = None,
    default: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
) -> Resource:
    """Requests with the ``header`` (and/or ``query`` parameter) go to version ``to``.

    Every other request goes to version ``default``, or to ``service`` itself when
    ``default`` is None. ``header`` is a ``(name, value)`` pair or a mapping of several
    headers that must all match.
    """
    match: dict[str, Any] = {}
    if header is not None:
        match["headers"] = [{"name": k, "value": v} for k, v in _pairs(header)]
    if query is not None:
        match["queryParams"] = [{"name": k, "value": v} for k, v in _pairs(query)]
    if not match:
        raise ResourceError(
            "spec.rules[0].matches[0]", "an A/B test needs a header or a query parameter"
        )
    rules = [
        {"matches": [match], "backendRefs": [_backend(service, to)]},
        {"backendRefs": [_backend(service, default)]},
    ]
    return _route(service, rules, name=name, namespace=namespace)


def _pairs(value: tuple[str, str] | Mapping[str, str]) -> Iterable[tuple[str, str]]:
    if isinstance(value, Mapping):
        return list(value.items())
    return [value]


# --- Modifiers of routes ------------------------------------------------------------------


def _modify(target: Resource | str, what: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The document of ``target`` (a route, or a plain route to a service) and its rules."""
    given: object = route(target) if isinstance(target, str) else target
    if not isinstance(given, Resource) or not isinstance(given.spec, HTTPRouteSpec):
        msg = f"{what} takes an HTTPRoute or a service name, not {target!r}"
        raise TypeError(msg)
    doc = given.to_document()
    rules: list[dict[str, Any]] = doc["spec"]["rules"]
    return doc, rules


def _duration(value: Duration) -> object:
    if isinstance(value, timedelta):
        try:
            return format_gateway_duration(value)
        except ValueError:
            return value  # parse says what is wrong with it
    return value


def retry(
    target: Resource | str,
    attempts: int,
    *,
    codes: Iterable[int] = (),
    backoff: Duration | None = None,
) -> Resource:
    """Retry failed requests of every rule of ``target`` up to ``attempts`` times.

    ``target`` is an HTTPRoute (from another builder, say) or a service name (a route
    to the service itself). ``codes`` are the HTTP statuses that are retried.
    """
    doc, rules = _modify(target, "retry")
    setting: dict[str, Any] = {"attempts": attempts}
    if codes:
        setting["codes"] = list(codes)
    if backoff is not None:
        setting["backoff"] = _duration(backoff)
    for rule in rules:
        rule["retry"] = setting
    return parse(doc)


def timeout(
    target: Resource | str,
    request: Duration | None = None,
    *,
    backend_request: Duration | None = None,
) -> Resource:
    """Limit how long each request of every rule of ``target`` may take ("0s": no limit)."""
    doc, rules = _modify(target, "timeout")
    setting: dict[str, Any] = {}
    if request is not None:
        setting["request"] = _duration(request)
    if backend_request is not None:
        setting["backendRequest"] = _duration(backend_request)
    if not setting:
        raise ResourceError("spec.rules[0].timeouts", "give request, backend_request or both")
    for rule in rules:
        rule["timeouts"] = setting
    return parse(doc)


def mirror(target: Resource | str, to: str, *, percent: int | None = None) -> Resource:
    """Copy the requests of every rule of ``target`` (or ``percent`` of them) to version ``to``.

    The copies' answers are ignored. With a route, ``to`` is a version of its first
    parent Service.
    """
    doc, rules = _modify(target, "mirror")
    service = doc["spec"]["parentRefs"][0]["name"]
    setting: dict[str, Any] = {"backendRef": _backend(service, to)}
    if percent is not None:
        setting["percent"] = percent
    for rule in rules:
        rule["filters"] = [
            *rule.get("filters", []),
            {"type": "RequestMirror", "requestMirror": setting},
        ]
    return parse(doc)


# --- Policies -----------------------------------------------------------------------------


def _source(caller: str) -> dict[str, Any]:
    if caller.startswith("spiffe://"):
        return {"type": "SPIFFE", "spiffe": caller}
    namespace, slash, name = caller.rpartition("/")
    account: dict[str, Any] = {"name": name}
    if slash:
        account = {"namespace": namespace, "name": name}
    return {"type": "ServiceAccount", "serviceAccount": account}


def _authorization(  # noqa: PLR0917 - private, called twice
    action: str,
    service: str,
    from_: Iterable[str] | None,
    paths: Iterable[str] | None,
    methods: Iterable[str] | None,
    name: str,
    namespace: str | None,
) -> Resource:
    rule: dict[str, Any] = {}
    if from_ is not None:
        rule["sources"] = [_source(caller) for caller in from_]
    if paths is not None or methods is not None:
        target: dict[str, Any] = {}
        if paths is not None:
            target["paths"] = list(paths)
        if methods is not None:
            target["methods"] = list(methods)
        rule["to"] = [target]
    spec = {
        "targetRefs": [{"group": "", "kind": "Service", "name": service}],
        "action": action,
        "rules": [rule],
    }
    return _document(_AUTHZ.api_version, _AUTHZ.kind, name, namespace, spec)


def allow(
    service: str,
    from_: Iterable[str] | None = None,
    *,
    paths: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    name: str | None = None,
    namespace: str | None = None,
) -> Resource:
    """An ALLOW AuthorizationPolicy: only these callers may call ``service``.

    A caller is a service of the policy's namespace (``"cart"``), of another one
    (``"shop/cart"``, ``"shop/*"``) or a SPIFFE ID; ``from_=None`` allows any caller.
    ``paths`` ("/exact", "/prefix/*") and ``methods`` limit the allowed requests.
    """
    return _authorization(
        "ALLOW", service, from_, paths, methods, name or f"{service}-allow", namespace
    )


def deny(
    service: str,
    from_: Iterable[str] | None = None,
    *,
    paths: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    name: str | None = None,
    namespace: str | None = None,
) -> Resource:
    """A DENY AuthorizationPolicy: these callers' matching requests are refused."""
    return _authorization(
        "DENY", service, from_, paths, methods, name or f"{service}-deny", namespace
    )


def load_balancer(
    service: str,
    type: str = "round_robin",
    *,
    hash_header: str | None = None,
    hash_cookie: str | None = None,
    hash_source_ip: bool = False,
    name: str | None = None,
    namespace: str | None = None,
    **policy: Any,
) -> Resource:
    """A BackendPolicy choosing how clients pick ``service``'s endpoints.

    ``type`` is round_robin, least_request, peak_ewma, ring_hash or maglev; the hashing
    ones need one of ``hash_header``, ``hash_cookie`` or ``hash_source_ip``. The rest of
    the policy comes as keywords in the resource's own shape, snake_case or camelCase:
    ``outlier_detection={"consecutive5xx": 3, "baseEjectionTime": "10s"}``,
    ``connection_limits``, ``retry_budget``, ``slow_start={"window": "30s"}``,
    ``fault_injection={"abort": {"percent": 1, "status": 503}}``. A service has one
    BackendPolicy (the oldest applies), so give them all here.
    """
    balancer: dict[str, Any] = {"type": type}
    hash_on: dict[str, Any] = {}
    if hash_header is not None:
        hash_on["header"] = hash_header
    if hash_cookie is not None:
        hash_on["cookie"] = hash_cookie
    if hash_source_ip:
        hash_on["sourceIP"] = True
    if hash_on:
        balancer["hashOn"] = hash_on
    spec: dict[str, Any] = {
        "targetRefs": [{"group": "", "kind": "Service", "name": service}],
        "loadBalancer": balancer,
    }
    for key, value in policy.items():
        if value is not None:
            spec[_camel(key)] = value
    return _document(
        _BACKEND_POLICY.api_version, _BACKEND_POLICY.kind, name or service, namespace, spec
    )


def _camel(name: str) -> str:
    """``outlier_detection`` -> ``outlierDetection`` (camelCase passes through)."""
    first, *rest = name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)
