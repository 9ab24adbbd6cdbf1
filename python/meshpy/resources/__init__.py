"""The user's config model: HTTPRoute and the Backend, Authorization and Tracing policies.

YAML (``meshpy apply -f``), JSON over REST and Python objects all go through the models
here; nothing touches a database or the network. Kinds:

=====================  ===============================  ============================
kind                   apiVersion                       plural (REST) / short names
=====================  ===============================  ============================
HTTPRoute              gateway.networking.k8s.io/v1     httproutes / route, hr
BackendPolicy          policy.meshpy.io/v1alpha1        backendpolicies / bp
AuthorizationPolicy    policy.meshpy.io/v1alpha1        authorizationpolicies / authz, ap
TracingPolicy          policy.meshpy.io/v1alpha1        tracingpolicies / tp
=====================  ===============================  ============================

- **HTTPRoute** is the Gateway API v1 type, GAMMA style (``parentRefs`` to a Service),
  with the API's defaults and validation rules; see ``meshpy.resources.httproute``.
- **BackendPolicy** sets load balancing, outlier detection, connection limits, retry
  budget, slow start and fault injection; see ``meshpy.resources.backendpolicy``.
- **AuthorizationPolicy** uses the field names of Gateway API GEP-3779: ``targetRefs``,
  ``action`` (ALLOW | DENY | AUDIT), ``rules[].sources[]`` as ``{type: SPIFFE, spiffe:
  "spiffe://td/ns/default/sa/cart"}`` or ``{type: ServiceAccount, serviceAccount:
  {namespace, name}}`` (a meshpy service is its service account; ``name: "*"`` means all
  of a namespace), plus meshpy's L7 ``rules[].to[]`` with ``paths`` and ``methods``; see
  ``meshpy.resources.authorization``.
- **TracingPolicy** sets the share of the traces starting at a Service's sidecars that
  are sampled; see ``meshpy.resources.tracingpolicy``.

Documents spell fields in camelCase, exactly as the Gateway API does; unknown fields and
Gateway API fields meshpy does not implement are refused by name
(``spec.rules[0].sessionPersistence: not supported by meshpy``), never ignored. Server-owned
metadata (uid, resourceVersion, generation, creationTimestamp, ...) and ``status`` are
accepted and dropped. Python code builds the same models with snake_case names::

    from meshpy.resources import (
        HTTPBackendRef, HTTPRouteRule, HTTPRouteSpec, ParentReference, Resource,
    )
    spec = HTTPRouteSpec(
        parent_refs=[ParentReference.service("payment")],
        rules=[HTTPRouteRule(backend_refs=[
            HTTPBackendRef(name="payment-v1", weight=90),
            HTTPBackendRef(name="payment-v2", weight=10),
        ])],
    )
    route = Resource.of(spec, name="payment-canary", namespace="default")

Exception tree::

    ValueError
    └── ResourceError   a document was refused; ``path`` names the field, ``message`` says why
"""

from meshpy.resources._common import (
    BackendObjectReference,
    ParentReference,
    PolicyTargetReference,
    format_gateway_duration,
    parse_gateway_duration,
)
from meshpy.resources._document import (
    DEFAULT_NAMESPACE,
    KINDS,
    KindInfo,
    Resource,
    Spec,
    kind_info,
    parse,
)
from meshpy.resources._errors import ResourceError
from meshpy.resources._stream import parse_stream
from meshpy.resources.authorization import (
    AuthorizationPolicySpec,
    AuthorizationRule,
    AuthorizationSource,
    AuthorizationTarget,
    ServiceAccountSource,
)
from meshpy.resources.backendpolicy import (
    BackendPolicySpec,
    ConnectionLimits,
    FaultAbort,
    FaultDelay,
    FaultInjection,
    HashOn,
    LoadBalancer,
    OutlierDetection,
    RetryBudget,
    SlowStart,
)
from meshpy.resources.httproute import (
    Fraction,
    HTTPBackendRef,
    HTTPHeader,
    HTTPHeaderFilter,
    HTTPHeaderMatch,
    HTTPPathMatch,
    HTTPPathModifier,
    HTTPQueryParamMatch,
    HTTPRequestMirrorFilter,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRetry,
    HTTPRouteRule,
    HTTPRouteSpec,
    HTTPRouteTimeouts,
    HTTPURLRewriteFilter,
)
from meshpy.resources.status import CONTROLLER_NAME, compute_status
from meshpy.resources.tracingpolicy import TracingPolicySpec

__all__ = [
    "CONTROLLER_NAME",
    "DEFAULT_NAMESPACE",
    "KINDS",
    "AuthorizationPolicySpec",
    "AuthorizationRule",
    "AuthorizationSource",
    "AuthorizationTarget",
    "BackendObjectReference",
    "BackendPolicySpec",
    "ConnectionLimits",
    "FaultAbort",
    "FaultDelay",
    "FaultInjection",
    "Fraction",
    "HTTPBackendRef",
    "HTTPHeader",
    "HTTPHeaderFilter",
    "HTTPHeaderMatch",
    "HTTPPathMatch",
    "HTTPPathModifier",
    "HTTPQueryParamMatch",
    "HTTPRequestMirrorFilter",
    "HTTPRouteFilter",
    "HTTPRouteMatch",
    "HTTPRouteRetry",
    "HTTPRouteRule",
    "HTTPRouteSpec",
    "HTTPRouteTimeouts",
    "HTTPURLRewriteFilter",
    "HashOn",
    "KindInfo",
    "LoadBalancer",
    "OutlierDetection",
    "ParentReference",
    "PolicyTargetReference",
    "Resource",
    "ResourceError",
    "RetryBudget",
    "ServiceAccountSource",
    "SlowStart",
    "Spec",
    "TracingPolicySpec",
    "compute_status",
    "format_gateway_duration",
    "kind_info",
    "parse",
    "parse_gateway_duration",
    "parse_stream",
]
