"""Checks of resources before and after apply: a pure function of the resources and services.

Codes are stable; an error means requests will fail, a warning means a resource does
less than it seems to.

======  ========  ================================================================
code    severity  finding
======  ========  ================================================================
MP000   error     a document is not a valid resource (``meshpy analyze -f`` only)
MP001   error     a backendRef (or mirror) names a Service that does not exist
MP002   error     a rule sends requests nowhere: no backendRefs, or all weights 0
MP003   warning   a rule can never match: an earlier rule of the route matches all of
                  its requests with the same precedence (Gateway API precedence)
MP004   warning   a Service's routes leave some requests unmatched (no catch-all
                  rule): those requests get 404 under GAMMA
MP005   warning   a policy targets no existing Service
======  ========  ================================================================

``services`` are the existing ``(namespace, name)`` Services, version services
included; when it is None the checks that need it (MP001, MP005) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from meshpy.resources import (
    BackendObjectReference,
    HTTPRouteMatch,
    HTTPRouteSpec,
    Resource,
)

__all__ = ["CODES", "Finding", "analyze", "has_errors"]

Severity = Literal["error", "warning"]

CODES: dict[str, tuple[Severity, str]] = {
    "MP000": ("error", "invalid resource"),
    "MP001": ("error", "backend Service does not exist"),
    "MP002": ("error", "rule sends requests nowhere"),
    "MP003": ("warning", "rule can never match"),
    "MP004": ("warning", "requests left unmatched (404)"),
    "MP005": ("warning", "policy targets no existing Service"),
}
"""Every code: its severity and a title."""


@dataclass(frozen=True)
class Finding:
    """One problem: its code, severity, the resource ("HTTPRoute default/cart"), a message."""

    code: str
    resource: str
    message: str
    path: str = ""

    @property
    def severity(self) -> Severity:
        """error or warning, fixed by the code."""
        return CODES[self.code][0]

    def as_dict(self) -> dict[str, str]:
        """The finding as JSON data."""
        return {
            "code": self.code,
            "severity": self.severity,
            "resource": self.resource,
            "path": self.path,
            "message": self.message,
        }


def has_errors(findings: Iterable[Finding]) -> bool:
    """Whether any finding is an error."""
    return any(f.severity == "error" for f in findings)


def label(res: Resource) -> str:
    """How findings name a resource: "HTTPRoute default/cart"."""
    return f"{res.kind} {res.effective_namespace}/{res.name}"


def analyze(
    resources: Iterable[Resource], services: Collection[tuple[str, str]] | None
) -> list[Finding]:
    """Every finding about ``resources``, in resource order then by code."""
    resources = list(resources)
    findings: list[Finding] = []
    for res in resources:
        spec = res.spec
        if isinstance(spec, HTTPRouteSpec):
            findings += _route_findings(res, spec, services)
        elif services is not None:
            ns = res.effective_namespace
            if not any((ns, t.name) in services for t in spec.target_refs):
                names = ", ".join(f"{ns}/{t.name}" for t in spec.target_refs)
                findings.append(
                    Finding(
                        "MP005",
                        label(res),
                        f"applies to nothing: no Service {names} exists",
                        "spec.targetRefs",
                    )
                )
    findings += _unmatched(resources)
    return findings


# --- Per route ------------------------------------------------------------------------------


def _route_findings(
    res: Resource, spec: HTTPRouteSpec, services: Collection[tuple[str, str]] | None
) -> list[Finding]:
    ns, where = res.effective_namespace, label(res)
    found: list[Finding] = []
    for i, rule in enumerate(spec.rules):
        at = f"spec.rules[{i}]"
        refs: list[tuple[str, BackendObjectReference]] = []
        filters = [(f"{at}.filters[{k}]", f) for k, f in enumerate(rule.filters)]
        for j, backend in enumerate(rule.backend_refs):
            refs.append((f"{at}.backendRefs[{j}]", backend))
            filters += [
                (f"{at}.backendRefs[{j}].filters[{k}]", f) for k, f in enumerate(backend.filters)
            ]
        refs += [
            (f"{path}.requestMirror.backendRef", f.request_mirror.backend_ref)
            for path, f in filters
            if f.request_mirror is not None
        ]
        if services is not None:
            for path, ref in refs:
                target = (ref.namespace or ns, ref.name)
                if ref.group == "" and ref.kind == "Service" and target not in services:
                    message = f"backend Service {target[0]}/{target[1]} does not exist"
                    found.append(Finding("MP001", where, message, path))
        if not rule.backend_refs:
            found.append(Finding("MP002", where, "no backendRefs: matching requests get 500", at))
        elif all(backend.weight == 0 for backend in rule.backend_refs):
            found.append(
                Finding("MP002", where, "every backend has weight 0: matching requests get 500", at)
            )
        for j, earlier in enumerate(spec.rules[:i]):
            if all(any(_covers(m, n) for m in earlier.matches) for n in rule.matches):
                message = f"never matches: rules[{j}] takes every request it would"
                found.append(Finding("MP003", where, message, at))
                break
    return found


def _prefix(value: str) -> str:
    return value.rstrip("/") or "/"


def _path_key(match: HTTPRouteMatch) -> tuple[str, str]:
    path = match.path
    return path.type, _prefix(path.value) if path.type == "PathPrefix" else path.value


def _value_covers(broad: tuple[str, str], narrow: tuple[str, str]) -> bool:
    """Whether the (type, value) condition ``broad`` accepts every value ``narrow`` does."""
    if broad == narrow:
        return True
    if broad[0] == "RegularExpression" and narrow[0] == "Exact":
        try:
            return re.fullmatch(broad[1], narrow[1]) is not None
        except re.error:  # pragma: no cover - the model refuses bad expressions
            return False
    return False


def _covers(broad: HTTPRouteMatch, narrow: HTTPRouteMatch) -> bool:
    """Whether ``broad`` takes every request ``narrow`` matches, at the same precedence.

    Gateway API precedence orders matches by exact over prefix path, the longest prefix,
    a method, the number of headers, then of query parameters; only a tie leaves it to
    rule order. So ``broad`` must have the same path, method and header and parameter
    names, and accept each of ``narrow``'s values.
    """
    if _path_key(broad) != _path_key(narrow) or broad.path.type == "RegularExpression":
        return False
    if broad.method != narrow.method:
        return False
    pairs = [
        ({h.name.lower(): (h.type, h.value) for h in broad.headers},
         {h.name.lower(): (h.type, h.value) for h in narrow.headers}),
        ({q.name: (q.type, q.value) for q in broad.query_params},
         {q.name: (q.type, q.value) for q in narrow.query_params}),
    ]  # fmt: skip
    for wide, tight in pairs:
        if wide.keys() != tight.keys():
            return False
        if not all(_value_covers(wide[k], tight[k]) for k in wide):
            return False
    return True


# --- Per Service ----------------------------------------------------------------------------


def _catch_all(match: HTTPRouteMatch) -> bool:
    return (
        match.path.type == "PathPrefix"
        and _prefix(match.path.value) == "/"
        and match.method is None
        and not match.headers
        and not match.query_params
    )


def _unmatched(resources: list[Resource]) -> list[Finding]:
    """MP004: parent Services (and ports) whose routes have no catch-all match."""
    parents: dict[tuple[str, str, int | None], list[str]] = {}
    covered: set[tuple[str, str, int | None]] = set()
    for res in resources:
        spec = res.spec
        if not isinstance(spec, HTTPRouteSpec):
            continue
        catch_all = any(_catch_all(m) for rule in spec.rules for m in rule.matches)
        for ref in spec.parent_refs:
            key = (ref.namespace or res.effective_namespace, ref.name, ref.port)
            parents.setdefault(key, []).append(res.name)
            if catch_all:
                covered.add(key)
    found = []
    for (ns, name, port), routes in parents.items():
        if (ns, name, port) in covered or (ns, name, None) in covered:
            continue
        where = f"Service {ns}/{name}" + (f" port {port}" if port is not None else "")
        listed = ", ".join(routes)
        message = (
            f"no rule of its routes ({listed}) matches every request: the others get 404; "
            "add a rule without matches"
        )
        found.append(Finding("MP004", where, message))
    return found
