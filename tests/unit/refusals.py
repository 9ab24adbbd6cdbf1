"""Valid resource templates, and refusal cases made by changing one field of one."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from meshpy.resources import ResourceError, parse

DELETE = object()


def route() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "canary", "namespace": "default"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "payment"}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/charge"}}],
                    "backendRefs": [{"name": "payment-v1", "port": 8080, "weight": 90}],
                }
            ],
        },
    }


def backend_policy() -> dict[str, Any]:
    return {
        "apiVersion": "policy.meshpy.io/v1alpha1",
        "kind": "BackendPolicy",
        "metadata": {"name": "payment"},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
            "loadBalancer": {"type": "round_robin"},
        },
    }


def authz() -> dict[str, Any]:
    return {
        "apiVersion": "policy.meshpy.io/v1alpha1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "payment"},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": "payment"}],
            "action": "ALLOW",
            "rules": [
                {
                    "sources": [{"type": "SPIFFE", "spiffe": "spiffe://meshpy.local/ns/a/sa/b"}],
                    "to": [{"paths": ["/x"], "methods": ["GET"]}],
                }
            ],
        },
    }


def set_field(doc: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """Set (or with DELETE remove) the value at a path like ``spec.rules[0].matches``."""
    doc = copy.deepcopy(doc)
    parts: list[str | int] = [
        int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[\]]+", path)
    ]
    target: Any = doc
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    elif isinstance(target, list) and parts[-1] == len(target):
        target.append(value)
    else:
        target[parts[-1]] = value
    return doc


R0 = "spec.rules[0]"
M0 = f"{R0}.matches[0]"
B0 = f"{R0}.backendRefs[0]"


def case(
    name: str, path: str, value: object, message: str, *, at: str = "", make: Any = None
) -> Any:
    """Set ``path`` to ``value``; expect ``message`` at ``path`` (+ ``at`` if it starts
    with "." or "[", else at ``at``)."""
    error_path = path + at if at.startswith((".", "[")) else at or path
    return pytest.param(make or route, path, value, error_path, message, id=name)


def assert_refused(doc: dict[str, Any], error_path: str, message: str) -> None:
    """``doc`` is refused with ``message`` at ``error_path``, in the error's every form."""
    with pytest.raises(ResourceError) as info:
        parse(doc)
    error = info.value
    assert error.path == error_path
    assert message in error.message
    assert str(error) == f"{error.path}: {error.message}"
    assert error.details[0] == (error.path, error.message)
