"""The question ``meshpy explain`` asks (``ExplainRequest``) and its answer (``Explanation``),
as the REST API takes and gives them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from meshpy.resources._common import HeaderName, HeaderValue, MethodToken, Namespace, RequestTarget

__all__ = [
    "AuthzDecision",
    "Backend",
    "BackendPolicyInForce",
    "Caller",
    "Destination",
    "ExplainRequest",
    "Explanation",
    "Header",
    "MatchedRule",
    "Mirror",
    "Refusal",
    "RequestShown",
    "Retry",
    "RouteDecision",
    "ServiceRef",
    "SkippedMatch",
    "Target",
]


class ServiceRef(BaseModel):
    """A service by namespace and name."""

    model_config = ConfigDict(extra="forbid")

    namespace: Namespace | None = Field(
        default=None,
        description="Its namespace; absent: default (the source's, for the destination).",
    )
    service: Namespace = Field(description="Its name (a DNS label, as namespaces are).")


class Header(BaseModel):
    """A request header."""

    model_config = ConfigDict(extra="forbid")

    name: HeaderName
    value: HeaderValue


class ExplainRequest(BaseModel):
    """A request from one service's app to another service, by name, to be explained."""

    model_config = ConfigDict(extra="forbid")

    source: ServiceRef = Field(description="The calling service (its sidecar routes).")
    destination: ServiceRef = Field(description="The service called: the request's host.")
    method: MethodToken = Field(description="The request method, e.g. GET.")
    path: RequestTarget = Field(description="The request target: a path, with a query or not.")
    headers: list[Header] = Field(default=[], max_length=100, description="More headers.")


class Caller(BaseModel):
    """The calling service and the identity its sidecar presents."""

    namespace: str
    service: str
    identity: str | None = Field(
        description="The SPIFFE ID the destination sees; null when sidecars talk plaintext."
    )


class Target(BaseModel):
    """The service called, and the host the request carries."""

    namespace: str
    service: str
    host: str


class RequestShown(BaseModel):
    """The request as explained."""

    method: str
    path: str
    query: str | None
    headers: list[Header]


class Refusal(BaseModel):
    """A sidecar's own answer instead of the app's."""

    status: int = Field(description="The status the caller gets.")
    reason: str = Field(description="Its x-meshpy-error reason.")
    detail: str = Field(description="Why, in words.")


class MatchedRule(BaseModel):
    """The route rule a request follows."""

    route: str | None = Field(
        description="The HTTPRoute (namespace/name); null: no route attaches to the service, "
        "and its own rule sends everything to it."
    )
    rule: int = Field(description="The rule's index in the route's spec.rules.")
    match: int | None = Field(description="The index in the rule's matches that held.")
    conditions: list[str] = Field(description="What that match checks, in words.")


class SkippedMatch(BaseModel):
    """A match of higher precedence that the request does not meet."""

    route: str | None
    rule: int
    match: int | None
    failed: str = Field(description="The condition it fails, in words.")


class Retry(BaseModel):
    """A rule's retries."""

    attempts: int
    codes: list[int]
    backoff: str


class RouteDecision(BaseModel):
    """How the caller's sidecar routes the request: the rule, and the matches passed over."""

    virtual_host: str | None = Field(description="Null when no virtual host serves the host.")
    matched: MatchedRule | None
    skipped: list[SkippedMatch] = Field(description="In precedence order, before the winner.")
    timeout: str | None = Field(description="The whole request's bound, every try included.")
    backend_timeout: str | None = Field(description="One try's bound, if the rule sets one.")
    retry: Retry | None


class Mirror(BaseModel):
    """Where copies of the requests to a backend go."""

    cluster: str
    percent: float


class BackendPolicyInForce(BaseModel):
    """How a backend's sidecar-side cluster treats requests: its BackendPolicy, as sent."""

    name: str | None = Field(
        description="The BackendPolicy (namespace/name); null: none, the defaults apply."
    )
    load_balancer: str
    settings: dict[str, Any] = Field(
        description="The cluster's other settings, as the proxy config names them: hash_on, "
        "outlier_detection, circuit_breakers, retry_budget, slow_start, fault."
    )


class AuthzDecision(BaseModel):
    """What the destination's sidecar decides on the request."""

    allowed: bool
    by: Literal["policy", "no_allow_match", "default"]
    policy: str | None = Field(description="The AuthorizationPolicy that decided.")
    action: Literal["allow", "deny"] | None
    rule: int | None = Field(description="The index of its rule that matched.")
    rule_text: str | None = Field(description="That rule, in words.")
    default: str = Field(description="The mesh default (MESHPY_AUTHZ_DEFAULT).")
    audited: list[str] = Field(description="AUDIT policies that match the request.")
    why: str


class Destination(BaseModel):
    """The instances of one version of a backend, and what their sidecars decide."""

    version: str | None
    instances: list[str]
    path: str = Field(description="The path the app gets.")
    authorization: AuthzDecision
    refused: Refusal | None = Field(description="Null: the app gets the request.")


class Backend(BaseModel):
    """One backend of the rule: its share, what its cluster does, where requests land."""

    cluster: str
    namespace: str | None
    service: str | None = Field(description="Null for a backend that resolves to no service.")
    weight: int
    share: float = Field(description="Percent of the rule's requests.")
    path: str = Field(description="The path it is sent with, after URL rewrites.")
    host: str | None = Field(description="The host it is sent with, if a rewrite sets one.")
    mirrors: list[Mirror]
    endpoints: int
    policy: BackendPolicyInForce
    destinations: list[Destination]
    refused: Refusal | None = Field(description="Set when the caller's sidecar answers itself.")


class Explanation(BaseModel):
    """What the mesh does with one request, and why."""

    source: Caller
    destination: Target
    request: RequestShown
    route: RouteDecision
    refused: Refusal | None = Field(
        description="The caller's sidecar's own answer (no route, no backend), if it answers."
    )
    backends: list[Backend]
