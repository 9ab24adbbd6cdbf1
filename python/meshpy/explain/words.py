"""The proxy config's conditions and decisions in words, for ``meshpy explain``: pure.

Everything here describes what the sidecars were sent (``meshpy.proxyconfig`` types),
not the resources it came from, so the words say exactly what the core checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshpy import proxyconfig

__all__ = [
    "authz_rule",
    "failed_condition",
    "match_conditions",
]


def match_conditions(match: proxyconfig.RouteMatch | None) -> list[str]:
    """Each condition of a route match, e.g. ``path PathPrefix /charge``, ``method POST``,
    ``header x-beta = 1``; a match of nothing (or a rule without matches) is ``any request``."""
    if match is None:
        return ["any request"]
    words: list[str] = []
    path = match.get("path")
    if path is not None:
        words.append(f"path {path['type']} {path['value']}")
    method = match.get("method")
    if method is not None:
        words.append(f"method {method}")
    words += [f"header {_name_value(h)}" for h in match.get("headers", [])]
    words += [f"query {_name_value(q)}" for q in match.get("query_params", [])]
    return words or ["any request"]


def failed_condition(match: proxyconfig.RouteMatch | None, failed: dict[str, Any]) -> str:
    """The condition of ``match`` that the core says failed (``{"condition": "header",
    "index": 0}``), in the words of ``match_conditions``."""
    condition = failed.get("condition")
    index = failed.get("index", 0)
    match = match or {}
    if condition == "path":
        path = match.get("path")
        return f"path {path['type']} {path['value']}" if path else "path"
    if condition == "method":
        return f"method {match.get('method')}"
    if condition == "header":
        return f"header {_name_value(_at(match.get('headers', []), index))}"
    if condition == "query":
        return f"query {_name_value(_at(match.get('query_params', []), index))}"
    return str(condition)


def authz_rule(rule: proxyconfig.AuthzRule) -> str:
    """An authorization rule in words: who (``from``) may send what (``to``)."""
    return f"from {_sources(rule.get('sources'))} to {_targets(rule.get('to'))}"


def _sources(sources: Sequence[proxyconfig.AuthzSource] | None) -> str:
    if sources is None:
        return "any caller"
    if not sources:
        return "nobody"
    words = []
    for source in sources:
        fields: dict[str, object] = dict(source)
        exact = fields.get("identity")
        words.append(str(exact) if exact is not None else f"{fields.get('identity_prefix')}*")
    return ", ".join(words)


def _targets(targets: Sequence[proxyconfig.AuthzTarget] | None) -> str:
    if targets is None:
        return "any request"
    if not targets:
        return "no request"
    words = []
    for target in targets:
        methods = " ".join(target.get("methods", [])) or "any method"
        paths = [_path(path) for path in target.get("paths", [])]
        words.append(f"{methods} {', '.join(paths) or 'any path'}")
    return "; ".join(words)


def _path(path: proxyconfig.AuthzPath) -> str:
    """``/charge`` (exact) or ``/refunds/*`` (a prefix), as AuthorizationPolicies write them."""
    fields: dict[str, object] = dict(path)
    exact = fields.get("exact")
    return str(exact) if exact is not None else f"{fields.get('prefix')}*"


def _name_value(condition: proxyconfig.NameValue | None) -> str:
    if condition is None:
        return "?"
    if condition.get("type") == "RegularExpression":
        return f"{condition['name']} ~ {condition['value']}"
    return f"{condition['name']} = {condition['value']}"


def _at(items: Sequence[proxyconfig.NameValue], index: int) -> proxyconfig.NameValue | None:
    return items[index] if 0 <= index < len(items) else None
