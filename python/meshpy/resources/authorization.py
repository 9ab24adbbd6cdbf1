"""AuthorizationPolicy (policy.meshpy.io/v1alpha1): who may call a Service, following GEP-3779.

Field names are those of Gateway API GEP-3779 ("Identity Based Authz for East-West
Traffic"): ``targetRefs``, ``action``, ``rules[].sources[]`` with ``type: SPIFFE`` and
``spiffe: spiffe://...``, or ``type: ServiceAccount`` and ``serviceAccount: {namespace,
name}`` ("*" for every one in the namespace). A meshpy identity is
``spiffe://<trust-domain>/ns/<namespace>/sa/<service>``, so a service account is a
meshpy service.

meshpy adds to the GEP: ``action`` DENY and AUDIT besides ALLOW, and L7 conditions in
``rules[].to[]`` (``paths``: exact, or a prefix ending in ``*``; ``methods``), matched on
the normalised path that is also forwarded. The GEP's ``networkAttributes`` (ports) is
refused, as is a ``selector`` in targetRefs.

Semantics: a rule matches when a source matches (``sources`` absent: any caller;
``sources: []``: nobody) and a ``to`` entry matches (absent: any request; ``[]``: none).
With ALLOW policies on a Service, a request is allowed only if a rule of one of them
matches (an ALLOW policy without rules allows nothing); a matching DENY rule refuses a
request whatever the ALLOW policies say; AUDIT only records the match.

```yaml
apiVersion: policy.meshpy.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payment-callers, namespace: default}
spec:
  targetRefs: [{group: "", kind: Service, name: payment}]
  action: ALLOW
  rules:
    - sources:
        - {type: ServiceAccount, serviceAccount: {name: cart}}
        - {type: SPIFFE, spiffe: "spiffe://meshpy.local/ns/shop/sa/checkout"}
      to:
        - {paths: ["/charge", "/refunds/*"], methods: [POST]}
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from meshpy.ca.spiffeid import is_spiffe_id
from meshpy.resources._common import (
    HTTPMethod,
    Namespace,
    PolicyTargetReference,
    SpecModel,
    field_error,
    is_dns_label,
    unique_targets,
    value_error,
)

__all__ = [
    "AuthorizationPolicySpec",
    "AuthorizationRule",
    "AuthorizationSource",
    "AuthorizationTarget",
    "ServiceAccountSource",
]

_AUTHZ_PATH = re.compile(r"/(?:[-A-Za-z0-9/._~!$&'()+,;=:@]|%[0-9a-fA-F]{2})*\*?")


def _check_spiffe(value: str) -> str:
    if not is_spiffe_id(value):
        msg = f"{value!r} is not a SPIFFE ID such as spiffe://meshpy.local/ns/default/sa/cart"
        raise value_error(msg)
    return value


def _check_account(value: str) -> str:
    if value != "*" and not is_dns_label(value):
        raise value_error(f"{value!r} is not a service account (a service name) or '*'")
    return value


def _check_path(value: str) -> str:
    if len(value) > 1024 or not _AUTHZ_PATH.fullmatch(value):
        msg = f"{value!r} is not a path ('/exact', or '/prefix/*' with one final '*')"
        raise value_error(msg)
    return value


class ServiceAccountSource(SpecModel):
    """A service account: a meshpy service, in the policy's namespace unless given."""

    namespace: Namespace | None = None
    name: Annotated[str, AfterValidator(_check_account)]


class AuthorizationSource(SpecModel):
    """Who is calling: a SPIFFE ID, or a service account; ``type`` says which."""

    type: Literal["SPIFFE", "ServiceAccount"]
    spiffe: Annotated[str, AfterValidator(_check_spiffe)] | None = None
    service_account: ServiceAccountSource | None = None

    @model_validator(mode="after")
    def _field_matches_type(self) -> Self:
        if self.type == "SPIFFE" and (self.spiffe is None or self.service_account is not None):
            raise field_error("spiffe", "type SPIFFE needs spiffe, and no serviceAccount")
        if self.type == "ServiceAccount" and (self.service_account is None or self.spiffe):
            raise field_error(
                "serviceAccount", "type ServiceAccount needs serviceAccount, and no spiffe"
            )
        return self


AuthorizationPath = Annotated[str, AfterValidator(_check_path)]


class AuthorizationTarget(SpecModel):
    """Which requests (meshpy L7 extension): any of ``paths`` and any of ``methods``."""

    paths: Annotated[list[AuthorizationPath], Field(max_length=64)] = Field(default_factory=list)
    methods: Annotated[list[HTTPMethod], Field(max_length=9)] = Field(default_factory=list)


class AuthorizationRule(SpecModel):
    """A rule: a matching source and a matching request."""

    unsupported: ClassVar[Mapping[str, str]] = {
        "networkAttributes": "meshpy authorizes per Service; use 'to' for paths and methods"
    }
    keep_empty: ClassVar[frozenset[str]] = frozenset({"sources", "to"})

    sources: Annotated[list[AuthorizationSource], Field(max_length=64)] | None = None
    to: Annotated[list[AuthorizationTarget], Field(max_length=16)] | None = None


class AuthorizationPolicySpec(SpecModel):
    """The spec of an AuthorizationPolicy."""

    unsupported: ClassVar[Mapping[str, str]] = {"enforcementLevel": "meshpy enforces at L7"}

    target_refs: Annotated[
        list[PolicyTargetReference],
        Field(min_length=1, max_length=16),
        AfterValidator(unique_targets),
    ]
    action: Literal["ALLOW", "DENY", "AUDIT"]
    rules: Annotated[list[AuthorizationRule], Field(max_length=64)] = Field(default_factory=list)
