"""AuthorizationPolicy resources to one sidecar's inbound ``authorization`` config: pure.

The data plane evaluates (``crates/proxy-core/src/authz.rs``), per request on HTTP
inbound listeners and per connection on TCP ones:

1. a matching rule of a ``deny`` policy refuses the request;
2. ``audit`` policies only count their matches;
3. when ``allow`` policies exist, a request is allowed only if one of their rules matches;
4. else the mesh default decides: ``all_unauthenticated`` allows everyone,
   ``all_authenticated`` only callers with a verified mTLS identity, ``deny`` nobody.

Sources become exact SPIFFE IDs or ID prefixes (a ServiceAccount ``*`` is every service of
a namespace); paths become exact or prefix matches. Policies that target the instance's
service and those that target its version service (``payment-v2``) both apply.
"""

from __future__ import annotations

from typing import Literal

from meshpy import proxyconfig
from meshpy.ca.spiffeid import workload_id
from meshpy.resources import Resource
from meshpy.resources.authorization import (
    AuthorizationPolicySpec,
    AuthorizationRule,
    AuthorizationSource,
    AuthorizationTarget,
)

__all__ = ["AUTHZ_DEFAULTS", "AuthzDefault", "inbound_authorization"]

AuthzDefault = Literal["all-unauthenticated", "all-authenticated", "deny"]
AUTHZ_DEFAULTS: tuple[AuthzDefault, ...] = ("all-unauthenticated", "all-authenticated", "deny")

_ACTIONS: dict[str, proxyconfig.AuthzAction] = {"ALLOW": "allow", "DENY": "deny", "AUDIT": "audit"}
_DEFAULTS: dict[AuthzDefault, proxyconfig.AuthzDefault] = {
    "all-unauthenticated": "all_unauthenticated",
    "all-authenticated": "all_authenticated",
    "deny": "deny",
}


def inbound_authorization(
    policies: tuple[Resource, ...],
    namespace: str,
    services: tuple[str, ...],
    trust_domain: str | None,
    default: AuthzDefault,
) -> proxyconfig.Authorization | None:
    """The ``authorization`` of the inbound listener of an instance of ``services``.

    None when there is nothing to enforce (no policy targets them and everyone is allowed).
    ``trust_domain`` None (a mesh without identities): source rules match no caller.
    """
    compiled: list[proxyconfig.AuthzPolicy] = []
    for policy in policies:
        spec = policy.spec
        if not isinstance(spec, AuthorizationPolicySpec):
            continue
        if policy.effective_namespace != namespace:
            continue
        if not any(target.name in services for target in spec.target_refs):
            continue
        compiled.append(
            {
                "name": f"{namespace}/{policy.name}",
                "action": _ACTIONS[spec.action],
                "rules": [_rule(rule, namespace, trust_domain) for rule in spec.rules],
            }
        )
    if not compiled and default == "all-unauthenticated":
        return None
    return {"default": _DEFAULTS[default], "policies": compiled}


def _rule(
    rule: AuthorizationRule, namespace: str, trust_domain: str | None
) -> proxyconfig.AuthzRule:
    out: proxyconfig.AuthzRule = {}
    if rule.sources is not None:
        sources = [_source(s, namespace, trust_domain) for s in rule.sources]
        out["sources"] = [s for s in sources if s is not None]
    if rule.to is not None:
        out["to"] = [_target(t) for t in rule.to]
    return out


def _source(
    source: AuthorizationSource, namespace: str, trust_domain: str | None
) -> proxyconfig.AuthzSource | None:
    if source.spiffe is not None:
        return {"identity": source.spiffe}
    account = source.service_account
    if account is None or trust_domain is None:
        return None
    account_ns = account.namespace or namespace
    if account.name == "*":
        # Every service of the namespace: the workload ID up to its service name.
        return {"identity_prefix": workload_id(trust_domain, account_ns, "")}
    return {"identity": workload_id(trust_domain, account_ns, account.name)}


def _target(target: AuthorizationTarget) -> proxyconfig.AuthzTarget:
    out: proxyconfig.AuthzTarget = {}
    if target.paths:
        out["paths"] = [
            {"prefix": path[:-1]} if path.endswith("*") else {"exact": path}
            for path in target.paths
        ]
    if target.methods:
        out["methods"] = list(target.methods)
    return out
