"""Status of a resource against the registry: Gateway API conditions, computed purely.

An HTTPRoute gets one entry per parentRef, ``{"parentRef", "controllerName",
"conditions"}``, with the conditions ``Accepted`` (False: NoMatchingParent when the Service
does not exist; UnsupportedValue when no rule can be served) and ``ResolvedRefs`` (False:
BackendNotFound, RefNotPermitted for another namespace, InvalidKind for anything but a
Service), plus ``PartiallyInvalid`` when some rules are dropped. A policy gets
``{"conditions": [Accepted]}``, False with TargetNotFound when none of its Services exists.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from meshpy.resources._common import BackendObjectReference
from meshpy.resources._document import Resource
from meshpy.resources.httproute import HTTPRouteSpec, refused_regular_expressions

__all__ = ["CONTROLLER_NAME", "backend_problem", "backend_refs", "compute_status"]

CONTROLLER_NAME = "meshpy.io/control-plane"
"""The controllerName written into route statuses."""

ServiceKeys = Collection[tuple[str, str]]


def backend_problem(
    ref: BackendObjectReference, namespace: str, services: ServiceKeys
) -> tuple[str, str] | None:
    """Why ``ref`` (in a route of ``namespace``) cannot be used: ``(reason, message)``, or None."""
    if ref.group != "" or ref.kind != "Service":
        what = f"{ref.kind}.{ref.group}" if ref.group else ref.kind
        return "InvalidKind", f"kind {what} is not supported; backends are Services"
    if ref.namespace is not None and ref.namespace != namespace:
        return (
            "RefNotPermitted",
            f"Service {ref.namespace}/{ref.name} is in another namespace; "
            "meshpy allows backends in the route's own namespace only",
        )
    if (namespace, ref.name) not in services:
        return "BackendNotFound", f"Service {namespace}/{ref.name} does not exist"
    return None


def backend_refs(spec: HTTPRouteSpec) -> list[tuple[str, BackendObjectReference]]:
    """Every backend a route refers to, mirrors included, with its path in the document."""
    refs: list[tuple[str, BackendObjectReference]] = []
    for i, rule in enumerate(spec.rules):
        at = f"spec.rules[{i}]"
        mirrors = [(f"{at}.filters[{k}]", f) for k, f in enumerate(rule.filters)]
        for j, ref in enumerate(rule.backend_refs):
            refs.append((f"{at}.backendRefs[{j}]", ref))
            mirrors += [
                (f"{at}.backendRefs[{j}].filters[{k}]", f) for k, f in enumerate(ref.filters)
            ]
        for where, f in mirrors:
            if f.request_mirror is not None:
                refs.append((f"{where}.requestMirror.backendRef", f.request_mirror.backend_ref))
    return refs


def compute_status(
    res: Resource,
    services: ServiceKeys,
    generation: int = 1,
    *,
    now: datetime | None = None,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status of ``res`` given the existing ``(namespace, name)`` Services.

    ``services`` includes version services (``payment-v2`` when an instance of ``payment``
    has version v2). ``now`` stamps ``lastTransitionTime`` (default: the current time); a
    condition whose status is the same as in ``previous`` keeps its old stamp.
    """
    stamp = _timestamp(now)
    namespace = res.effective_namespace
    spec = res.spec
    if isinstance(spec, HTTPRouteSpec):
        return _route_status(
            spec,
            namespace=namespace,
            services=services,
            generation=generation,
            stamp=stamp,
            previous=previous,
        )
    missing = [t.name for t in spec.target_refs if (namespace, t.name) not in services]
    found = [t.name for t in spec.target_refs if t.name not in missing]
    if not found:
        accepted = _condition(
            "Accepted", False, "TargetNotFound", f"{_services(namespace, missing)} not found"
        )
    else:
        message = f"applies to {_services(namespace, found)}"
        if missing:
            message += f"; {_services(namespace, missing)} not found"
        accepted = _condition("Accepted", True, "Accepted", message)
    old = previous.get("conditions") if previous else None
    return {"conditions": _stamped([accepted], generation, stamp, old)}


def _route_status(
    spec: HTTPRouteSpec,
    *,
    namespace: str,
    services: ServiceKeys,
    generation: int,
    stamp: str,
    previous: Mapping[str, Any] | None,
) -> dict[str, Any]:
    problems = [
        (reason, f"{path}: {message}")
        for path, ref in backend_refs(spec)
        if (found := backend_problem(ref, namespace, services)) is not None
        for reason, message in [found]
    ]
    if problems:
        resolved = _condition(
            "ResolvedRefs", False, problems[0][0], "; ".join(m for _, m in problems)
        )
    else:
        resolved = _condition("ResolvedRefs", True, "ResolvedRefs", "all references resolved")
    dropped = [f"rules[{i}]" for i, r in enumerate(spec.rules) if refused_regular_expressions(r)]
    unsupported = "a RegularExpression match that the data plane refuses (Rust regex syntax)"
    old_parents = previous.get("parents", []) if previous else []
    parents = []
    for ref in spec.parent_refs:
        parent_ns = ref.namespace or namespace
        service = f"Service {parent_ns}/{ref.name}"
        if (parent_ns, ref.name) not in services:
            accepted = _condition(
                "Accepted", False, "NoMatchingParent", f"{service} does not exist"
            )
        elif len(dropped) == len(spec.rules):
            accepted = _condition(
                "Accepted", False, "UnsupportedValue", f"every rule: {unsupported}"
            )
        else:
            accepted = _condition("Accepted", True, "Accepted", f"attached to {service}")
        conditions = [accepted, resolved]
        if dropped and len(dropped) < len(spec.rules):
            message = f"Dropped Rule {', '.join(dropped)}: {unsupported}"
            conditions.append(_condition("PartiallyInvalid", True, "UnsupportedValue", message))
        parent_ref = ref.model_dump(mode="json", by_alias=True)
        old = next(
            (p.get("conditions") for p in old_parents if p.get("parentRef") == parent_ref), None
        )
        parents.append(
            {
                "parentRef": parent_ref,
                "controllerName": CONTROLLER_NAME,
                "conditions": _stamped(conditions, generation, stamp, old),
            }
        )
    return {"parents": parents}


def _condition(kind: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message}


def _stamped(
    conditions: list[dict[str, Any]], generation: int, stamp: str, old: object
) -> list[dict[str, Any]]:
    before = {}
    if isinstance(old, list):
        before = {c.get("type"): c for c in old if isinstance(c, Mapping)}
    out = []
    for condition in conditions:
        prior = before.get(condition["type"])
        since = stamp
        if prior and prior.get("status") == condition["status"] and prior.get("lastTransitionTime"):
            since = str(prior["lastTransitionTime"])
        out.append({**condition, "observedGeneration": generation, "lastTransitionTime": since})
    return out


def _services(namespace: str, names: list[str]) -> str:
    listed = ", ".join(f"{namespace}/{n}" for n in names)
    return f"Service{'s' if len(names) > 1 else ''} {listed}"


def _timestamp(now: datetime | None) -> str:
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
