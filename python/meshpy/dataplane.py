"""Typed proxy config (pydantic models of the Rust core's JSON) and a Proxy wrapper over _core.

The models mirror the Rust structs field for field and forbid unknown fields, so a config
that validates here is the JSON the core parses. The core still validates everything
itself: these models give early, typed errors and the published JSON Schema
(``python -m meshpy.dataplane --schema`` writes api/proxy-config.schema.json).
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal, Self, TypedDict, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

from meshpy import _core
from meshpy.configfile import BOOTSTRAP_KEYS, IDENTITY_KEY, IdentityFiles
from meshpy.durations import DURATION_PATTERN, format_duration, parse_duration

__all__ = [
    "Authorization",
    "AuthzPolicy",
    "AuthzRule",
    "AuthzTarget",
    "Bootstrap",
    "CertificateInfo",
    "CircuitBreakers",
    "Cluster",
    "ClusterTls",
    "Duration",
    "ExactPath",
    "HashOnCookie",
    "HashOnHeader",
    "HashOnSourceIp",
    "HeaderModifier",
    "HeaderPair",
    "IdentityPaths",
    "IdentityPrefixSource",
    "IdentitySource",
    "Limits",
    "Listener",
    "ListenerTls",
    "NameValue",
    "OutlierDetection",
    "PathMatch",
    "PathRewrite",
    "Pool",
    "PrefixPath",
    "Proxy",
    "ProxyConfig",
    "RouteFilters",
    "RouteMatch",
    "RouteRule",
    "RuleTimeouts",
    "SlowStart",
    "Snapshot",
    "SpiffeId",
    "Timeouts",
    "UrlRewrite",
    "VirtualHost",
    "WeightedBackend",
    "WeightedEndpoint",
    "format_loc",
    "json_schema",
]


def _to_timedelta(value: object) -> object:
    if isinstance(value, str):
        value = parse_duration(value)
    if isinstance(value, timedelta) and value <= timedelta(0):
        msg = "must be longer than zero"
        raise ValueError(msg)
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": 'A duration: a number and a unit (ms, s, m, h), e.g. "250ms", "15s".',
        }
    ),
]
"""A positive duration, "250ms", "15s", "5m" or "1h": a timedelta in Python, a string in JSON."""


_ADDRESS_PATTERN = r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]):\d{1,5}$"


def _check_socket_addr(value: object) -> object:
    if not isinstance(value, str):
        return value
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not isinstance(_parse_ip(host, value), ipaddress.IPv6Address):
            msg = f"invalid address {value!r}: brackets are for IPv6 only"
            raise ValueError(msg)
    elif isinstance(_parse_ip(host, value), ipaddress.IPv6Address):
        msg = f"invalid address {value!r}: write IPv6 as [addr]:port"
        raise ValueError(msg)
    if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535:
        msg = f"invalid address {value!r}: expected ip:port with a port of 0..65535"
        raise ValueError(msg)
    return value


def _parse_ip(host: str, whole: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        msg = f"invalid address {whole!r}: expected ip:port, e.g. 127.0.0.1:8000 (no host names)"
        raise ValueError(msg) from None


def _duration_field(default: str, description: str) -> Any:
    """A Duration field whose default shows as a string in the JSON Schema too."""
    return Field(
        default=parse_duration(default),
        description=description,
        json_schema_extra={"default": default},
    )


SocketAddr = Annotated[
    str,
    BeforeValidator(_check_socket_addr),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _ADDRESS_PATTERN,
            "description": "ip:port (IPv6 as [addr]:port); port 0 picks a free port.",
        }
    ),
]
"""An "ip:port" socket address; port 0 asks the OS for a free port."""


def _check_endpoint(value: object) -> object:
    if isinstance(value, str):
        host, _, port = value.rpartition(":")
        if int(port) == 0 or ipaddress.ip_address(host.strip("[]")).is_unspecified:
            msg = f"{value} is not a reachable address"
            raise ValueError(msg)
    return value


Endpoint = Annotated[
    SocketAddr,
    AfterValidator(_check_endpoint),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _ADDRESS_PATTERN,
            "description": "Upstream ip:port (IPv6 as [addr]:port).",
        }
    ),
]
"""An upstream "ip:port": port 0 and unspecified addresses (0.0.0.0, [::]) are refused."""

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=253)]
"""A listener or cluster name: lower-case letters, digits, '_', '.', '-'."""


_SPIFFE_PATTERN = r"^spiffe://[a-z0-9._-]+(/[A-Za-z0-9._-]+)+$"
_SPIFFE_ID = re.compile(_SPIFFE_PATTERN)


def _check_spiffe_id(value: str) -> str:
    """The core's rules: scheme spiffe, a lowercase trust domain without port or user info,
    a non-empty path of segments of letters, digits, '.', '-', '_' (not '.' or '..')."""
    if len(value) > 2048 or not _SPIFFE_ID.match(value):
        msg = (
            f"{value!r} is not a workload SPIFFE ID: expected "
            "spiffe://<trust domain>/<path>, e.g. spiffe://meshpy.local/ns/default/sa/web"
        )
        raise ValueError(msg)
    if any(segment in (".", "..") for segment in value.split("/")[3:]):
        msg = f"{value!r}: path segments must not be '.' or '..'"
        raise ValueError(msg)
    return value


SpiffeId = Annotated[
    str,
    AfterValidator(_check_spiffe_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _SPIFFE_PATTERN,
            "maxLength": 2048,
            "description": "A workload SPIFFE ID, e.g. spiffe://meshpy.local/ns/default/sa/web.",
        }
    ),
]
"""A workload SPIFFE ID: ``spiffe://<trust domain>/<path>``, no port, query or fragment."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class Timeouts(_Model):
    """Per-request and per-connection time limits of a listener, slow clients included."""

    request: Duration = _duration_field(
        "15s",
        "Longest time from the request's first byte to the response's headers.",
    )
    idle: Duration = _duration_field(
        "300s",
        "Close a downstream connection after it has been idle this long.",
    )
    request_head: Duration = _duration_field(
        "10s",
        "Once an HTTP/1 request head has begun, the whole head must arrive within this.",
    )
    body_progress: Duration = _duration_field(
        "30s",
        "Longest a request body may send nothing while the upstream waits for it (then 408).",
    )
    send: Duration = _duration_field(
        "30s",
        "Longest a write to a client that does not read may stay blocked (then it is closed).",
    )


class Limits(_Model):
    """Limits that protect a listener from too many or too large requests."""

    max_connections: int = Field(
        default=10_000,
        ge=1,
        description="Most downstream connections open at once; more are closed.",
    )
    max_header_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=1 << 20,
        description="Most bytes of request line plus headers; more gets 431.",
    )
    max_headers: int = Field(
        default=100, ge=1, le=1000, description="Most request header fields; more gets 431."
    )


def _check_regex(pattern: str) -> None:
    problem = _core.regex_problem(pattern)
    if problem is not None:
        raise ValueError(problem)


class NameValue(_Model):
    """A condition on a header (name case-insensitive) or query parameter: an exact value,
    or a regular expression the whole value must match."""

    name: str = Field(min_length=1, description="Header or query parameter name.")
    value: str = Field(description="The exact value, or a regular expression.")
    type: Literal["Exact", "RegularExpression"] = Field(
        default="Exact",
        description="Exact, or RegularExpression (Rust regex syntax, whole value).",
    )

    @model_validator(mode="after")
    def _check_value(self) -> Self:
        if self.type == "RegularExpression":
            _check_regex(self.value)
        return self


class PathMatch(_Model):
    """A path condition: Exact, PathPrefix matched element by element, or a regular
    expression the whole path must match."""

    type: Literal["Exact", "PathPrefix", "RegularExpression"] = Field(
        description="Exact, PathPrefix or RegularExpression (Rust regex syntax)."
    )
    value: str = Field(description="An absolute path starting with '/', or a regular expression.")

    @model_validator(mode="after")
    def _check_value(self) -> Self:
        if self.type == "RegularExpression":
            _check_regex(self.value)
        elif not self.value.startswith("/"):
            msg = "must start with '/'"
            raise ValueError(msg)
        return self


class RouteMatch(_Model):
    """Conditions that must all hold for a request to match."""

    path: PathMatch | None = Field(default=None, description="Path condition; none = any path.")
    headers: list[NameValue] = Field(default_factory=list, description="Header conditions.")
    query_params: list[NameValue] = Field(
        default_factory=list, description="Query parameter conditions."
    )
    method: str | None = Field(default=None, description="Request method, e.g. GET.")


class HeaderPair(_Model):
    """A header to set or add."""

    name: str = Field(min_length=1, description="Header name, case-insensitive.")
    value: str = Field(description="The value.")


class HeaderModifier(_Model):
    """Header changes; a name may appear in one action only."""

    set: list[HeaderPair] = Field(
        default_factory=list, description="Replace every value (add the header if absent)."
    )
    add: list[HeaderPair] = Field(
        default_factory=list, description="Add a value, keeping those already there."
    )
    remove: list[str] = Field(default_factory=list, description="Remove the header.")


class PathRewrite(_Model):
    """A path rewrite; the query is kept."""

    type: Literal["ReplaceFullPath", "ReplacePrefixMatch"] = Field(
        description="Replace the whole path, or the PathPrefix that matched."
    )
    value: str = Field(
        description="A path starting with '/'; for ReplacePrefixMatch \"\" strips the prefix."
    )


class UrlRewrite(_Model):
    """What the upstream sees instead of the client's host and path."""

    hostname: str | None = Field(default=None, description="The Host or :authority sent.")
    path: PathRewrite | None = Field(default=None, description="The path rewrite.")


class RequestMirror(_Model):
    """Copies of ``percent``% of requests (with a body of at most 64 KiB) go to ``cluster``;
    their answers are drained and dropped, and the mirror's Host gets ``-shadow`` appended."""

    cluster: Name = Field(description="The cluster that gets the copies.")
    percent: float = Field(
        default=100.0, ge=0, le=100, description="Share of requests copied, 0..100."
    )


class RouteFilters(_Model):
    """Gateway API filters of a rule or a backend (a backend's run after its rule's)."""

    request_headers: HeaderModifier | None = Field(
        default=None, description="RequestHeaderModifier."
    )
    response_headers: HeaderModifier | None = Field(
        default=None, description="ResponseHeaderModifier."
    )
    url_rewrite: UrlRewrite | None = Field(
        default=None, description="URLRewrite; a backend's replaces its rule's."
    )
    request_mirror: RequestMirror | None = Field(
        default=None,
        description="RequestMirror: copies of some requests to another cluster, answers ignored.",
    )


class WeightedBackend(_Model):
    """A cluster a rule sends to, with a proportional weight (0 sends nothing)."""

    cluster: Name = Field(description="Name of the cluster.")
    weight: int = Field(default=1, ge=0, le=1_000_000, description="Proportional weight.")
    filters: RouteFilters | None = Field(
        default=None, description="Filters of requests sent to this backend only."
    )


class RuleTimeouts(_Model):
    """Per-rule timeouts; ``request`` overrides the listener's."""

    request: Duration | None = Field(
        default=None, description="The whole request, to the response headers; then 504."
    )
    backend_request: Duration | None = Field(
        default=None, description="One request to an endpoint, to its response headers; then 504."
    )

    @model_validator(mode="after")
    def _backend_within_request(self) -> Self:
        if self.request and self.backend_request and self.backend_request > self.request:
            msg = "backend_request must not be longer than request"
            raise ValueError(msg)
        return self


class Retry(_Model):
    """Retries of a rule's failed requests (Gateway API HTTPRouteRetry), within the budget of
    the cluster. Statuses and timeouts are retried for idempotent methods only; a request that
    never reached the upstream (connect failure) is retried whatever its method."""

    attempts: int = Field(default=1, ge=0, le=10, description="Retries after the first try.")
    codes: list[Annotated[int, Field(ge=400, le=599)]] = Field(
        default_factory=list,
        description="Response statuses retried; connection failures always are.",
    )
    backoff: Duration = _duration_field(
        "25ms", "Base of the exponential backoff with full jitter (capped at 10 times it)."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        for i, code in enumerate(self.codes):
            if code in self.codes[:i]:
                msg = f"codes[{i}]: {code} is listed twice"
                raise ValueError(msg)
        if self.backoff > timedelta(seconds=10):
            msg = "backoff: must be at most 10s"
            raise ValueError(msg)
        return self


class RouteRule(_Model):
    """A rule: if any match holds, the request goes to one of the backends by weight."""

    matches: list[RouteMatch] = Field(
        default_factory=list, description="Alternatives (OR); empty matches every request."
    )
    backends: list[WeightedBackend] = Field(min_length=1, description="Weighted clusters.")
    timeouts: RuleTimeouts | None = Field(default=None, description="Per-rule timeouts.")
    filters: RouteFilters | None = Field(
        default=None, description="Header modifiers and URL rewrite of the rule's requests."
    )
    retry: Retry | None = Field(
        default=None,
        description="Retries; per try timeouts.backend_request, all tries timeouts.request.",
    )


class VirtualHost(_Model):
    """Requests whose Host (without port) is one of ``hosts`` follow these rules."""

    name: str = Field(min_length=1, description="Name for logs and stats.")
    hosts: list[str] = Field(
        min_length=1, description='Host names, case-insensitive, without port; "*" = any host.'
    )
    rules: list[RouteRule] = Field(
        default_factory=list,
        description="Rules; Gateway API precedence picks among matching ones. "
        "A host with no matching rule gets 404.",
    )


class ListenerTls(_Model):
    """mTLS termination (a sidecar's inbound): TLS 1.3, a client X.509-SVID from the roots."""

    mode: Literal["strict", "permissive"] = Field(
        default="strict",
        description="strict: only mTLS, plaintext connections are closed; permissive: mTLS "
        "when the first byte opens a TLS handshake, plaintext otherwise.",
    )


_AUTHZ_PATH_PATTERN = r"^/[!$-;=@-\[\]_a-z~]*$"
_PERCENT_ENCODINGS = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*")


def _check_percent_encodings(value: str) -> str:
    if not _PERCENT_ENCODINGS.fullmatch(value):
        msg = f"{value!r} has a malformed percent-encoding ('%' and two hex digits)"
        raise ValueError(msg)
    return value


AuthzPathValue = Annotated[
    str,
    Field(pattern=_AUTHZ_PATH_PATTERN, max_length=1024),
    AfterValidator(_check_percent_encodings),
]
"""An absolute path of URI path characters (no query); matched after normalisation."""


class IdentitySource(_Model):
    """A caller whose verified SPIFFE ID is exactly this."""

    identity: SpiffeId = Field(description="The caller's SPIFFE ID.")


class IdentityPrefixSource(_Model):
    """Callers whose verified SPIFFE ID starts with this prefix."""

    identity_prefix: str = Field(
        pattern=r"^spiffe://[a-z0-9._-]+/[A-Za-z0-9._/-]*$",
        max_length=2048,
        description="spiffe://<trust domain>/ and a path prefix, e.g. "
        "spiffe://meshpy.local/ns/ops/sa/ (every service of namespace ops).",
    )


class ExactPath(_Model):
    """The whole normalised path equals this."""

    exact: AuthzPathValue = Field(description="An absolute path, e.g. /charge.")


class PrefixPath(_Model):
    """The normalised path starts with this, byte for byte."""

    prefix: AuthzPathValue = Field(description="A path prefix, e.g. /refunds/.")


class AuthzTarget(_Model):
    """Requests: any of ``paths`` and any of ``methods``; an empty list matches any."""

    paths: list[ExactPath | PrefixPath] = Field(
        default_factory=list,
        max_length=64,
        description="Conditions on the normalised path (OR); empty = any path. "
        "On a tcp listener a condition makes allow rules miss and deny rules match.",
    )
    methods: list[Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]] = Field(
        default_factory=list,
        max_length=16,
        description="Methods as sent, e.g. POST (OR); empty = any method.",
    )


class AuthzRule(_Model):
    """A rule matches when a source matches and a ``to`` entry matches."""

    sources: list[IdentitySource | IdentityPrefixSource] | None = Field(
        default=None,
        max_length=64,
        description="Callers (OR) by verified mTLS identity; absent = any caller, "
        "unauthenticated ones too; [] = nobody.",
    )
    to: list[AuthzTarget] | None = Field(
        default=None, max_length=16, description="Requests (OR); absent = any; [] = none."
    )


class AuthzPolicy(_Model):
    """A named policy: what its rules' matches lead to."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_./-]*$",
        max_length=320,
        description="Unique in the listener, e.g. default/payment-callers (a metric label); "
        '"default" is reserved.',
    )
    action: Literal["allow", "deny", "audit"] = Field(
        description="deny: a match refuses; allow: once any allow policy exists, only a "
        "match allows; audit: a match is only counted."
    )
    rules: list[AuthzRule] = Field(
        default_factory=list, max_length=64, description="Alternatives (OR); none matches nothing."
    )


class Authorization(_Model):
    """Who may send which requests (http) or open connections (tcp) on a listener."""

    default: Literal["all_unauthenticated", "all_authenticated", "deny"] = Field(
        default="all_unauthenticated",
        description="When no deny policy matches and there is no allow policy: everyone, "
        "callers with a verified mTLS identity, or nobody.",
    )
    policies: list[AuthzPolicy] = Field(
        default_factory=list, max_length=1024, description="The policies."
    )

    @model_validator(mode="after")
    def _check_names(self) -> Self:
        seen: set[str] = set()
        for i, policy in enumerate(self.policies):
            if policy.name == "default":
                msg = f'policies[{i}].name: "default" is reserved for the default decision'
                raise ValueError(msg)
            if policy.name in seen:
                msg = f"policies[{i}].name: duplicate policy name {policy.name!r}"
                raise ValueError(msg)
            seen.add(policy.name)
        return self


class Listener(_Model):
    """A downstream socket: where the proxy accepts connections and where their traffic goes."""

    name: Name = Field(
        description='Unique listener name, used in stats and addresses; "admin" is reserved.'
    )
    address: SocketAddr = Field(description="ip:port to bind; port 0 picks a free port.")
    protocol: Literal["http", "tcp"] = Field(
        description="http: HTTP/1.1 and h2c (prior knowledge), detected per connection; "
        "tcp: raw bytes."
    )
    cluster: Name | None = Field(
        default=None,
        description="Cluster that receives all traffic; tcp listeners need it, "
        "http listeners have either this or routes.",
    )
    routes: list[VirtualHost] = Field(
        default_factory=list, description="http only: virtual hosts chosen by Host."
    )
    proxy_header: Literal["via", "forwarded", "none"] = Field(
        default="via",
        description="Header naming the proxy hop (http only); x-forwarded-for is always appended.",
    )
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Time limits.")
    limits: Limits = Field(default_factory=Limits, description="Connection and header limits.")
    tls: ListenerTls | None = Field(
        default=None,
        description="Terminate mTLS; requests that arrive over it carry x-meshpy-client-id "
        "(the client's SPIFFE ID). Absent: plaintext only.",
    )
    authorization: Authorization | None = Field(
        default=None,
        description="Policies on who may call: refused http requests get 403 "
        "(x-meshpy-error: unauthorized), refused tcp connections are closed. "
        "Absent: everything is allowed.",
    )


class Pool(_Model):
    """Reuse of idle upstream connections."""

    idle_timeout: Duration = _duration_field("60s", "Close a pooled connection idle this long.")
    max_idle_per_endpoint: int = Field(
        default=64, ge=0, description="Most idle connections kept per endpoint."
    )


_ZONE_PATTERN = r"^[A-Za-z0-9_./-]{1,128}$"

Zone = Annotated[str, Field(pattern=_ZONE_PATTERN)]
"""A zone name: letters, digits, '-', '_', '.' and '/', at most 128 characters."""


class WeightedEndpoint(_Model):
    """An upstream endpoint with a share of requests; a plain "ip:port" means weight 1, no zone."""

    address: Endpoint = Field(description="Upstream ip:port.")
    weight: int = Field(default=1, ge=1, le=128, description="Proportional share of requests.")
    zone: Zone | None = Field(
        default=None, description="The zone the endpoint runs in, for the cluster's local_zone."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        return {"address": value} if isinstance(value, str) else value

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> object:
        """Serialise weight-1 endpoints without a zone as the plain "ip:port" the core also takes,
        and leave out an absent zone."""
        if self.zone is not None:
            return handler(self)
        if self.weight == 1:
            return self.address
        return {"address": self.address, "weight": self.weight}


EndpointItem = Annotated[
    WeightedEndpoint,
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": _ADDRESS_PATTERN,
                    "description": "Upstream ip:port (IPv6 as [addr]:port), weight 1.",
                },
                {
                    "type": "object",
                    "properties": {
                        "address": {"type": "string", "pattern": _ADDRESS_PATTERN},
                        "weight": {"type": "integer", "minimum": 1, "maximum": 128, "default": 1},
                        "zone": {
                            "anyOf": [
                                {"type": "string", "pattern": _ZONE_PATTERN},
                                {"type": "null"},
                            ],
                            "default": None,
                        },
                    },
                    "required": ["address"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]
"""An upstream endpoint in either form the core accepts."""


class ClusterTls(_Model):
    """mTLS to a cluster's endpoints: TLS 1.3, the proxy's certificate, an exact server identity."""

    identity: SpiffeId = Field(
        description="The SPIFFE ID the endpoints' certificates must carry; any other is a 502."
    )


_TOKEN_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


class HashOnHeader(_Model):
    """Hash the value of a request header; requests without it go to a random endpoint."""

    header: str = Field(pattern=_TOKEN_PATTERN, description="Header name, case-insensitive.")


class HashOnCookie(_Model):
    """Hash the value of a cookie; requests without it go to a random endpoint."""

    cookie: str = Field(pattern=_TOKEN_PATTERN, description="Cookie name.")


class HashOnSourceIp(_Model):
    """Hash the downstream client's IP address."""

    source_ip: Literal[True] = Field(description="Must be true.")


HashOn = HashOnHeader | HashOnCookie | HashOnSourceIp
"""What ring_hash and maglev hash: a header, a cookie, or the client's IP."""


class SlowStart(_Model):
    """Ramp of endpoints that join a cluster already serving."""

    window: Duration = Field(
        description="Time over which a new endpoint's weight grows linearly from 10% to 100%."
    )


class OutlierDetection(_Model):
    """Passive health checking: endpoints that keep failing are ejected for a while."""

    consecutive_5xx: int | None = Field(
        default=5,
        ge=1,
        description="Consecutive 5xx responses, connect failures or timeouts that eject; "
        "null disables.",
    )
    consecutive_gateway_errors: int | None = Field(
        default=None,
        ge=1,
        description="Consecutive 502, 503, 504, connect failures or timeouts that eject; "
        "null disables.",
    )
    interval: Duration = _duration_field(
        "10s", "Each interval an endpoint stays in, its count of past ejections goes down by one."
    )
    base_ejection_time: Duration = _duration_field(
        "30s",
        "An ejection lasts this times the number of times the endpoint was ejected "
        "(at most 300s, or this if longer).",
    )
    max_ejection_percent: int = Field(
        default=10,
        ge=0,
        le=100,
        description="Most endpoints ejected at once, in percent of the cluster; one may always be.",
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> Self:
        if self.consecutive_5xx is None and self.consecutive_gateway_errors is None:
            msg = "set consecutive_5xx or consecutive_gateway_errors"
            raise ValueError(msg)
        return self


class RetryBudget(_Model):
    """How many retries requests to a cluster may cause, always on: over 10 s, retries are at
    most ``percent``% of requests plus ``min_retries_per_second`` per second."""

    percent: float = Field(
        default=20.0, ge=0, le=100, description="Retries as a share of requests, 0..100."
    )
    min_retries_per_second: int = Field(
        default=10, ge=0, le=100_000, description="Retries allowed per second at any rate."
    )


class FaultDelay(_Model):
    """Hold ``percent``% of requests for ``duration`` before sending them."""

    percent: float = Field(ge=0, le=100, description="Share of requests delayed, 0..100.")
    duration: Duration = Field(description="How long.")


class FaultAbort(_Model):
    """Answer ``percent``% of requests with ``status`` (header ``x-meshpy-fault: abort``)."""

    percent: float = Field(ge=0, le=100, description="Share of requests aborted, 0..100.")
    status: int = Field(ge=200, le=599, description="The status they get.")


class Fault(_Model):
    """Faults this proxy injects into requests to the cluster, before picking an endpoint."""

    delay: FaultDelay | None = Field(default=None, description="Delay some requests.")
    abort: FaultAbort | None = Field(default=None, description="Answer some with an error.")

    @model_validator(mode="after")
    def _some(self) -> Self:
        if self.delay is None and self.abort is None:
            msg = "give delay, abort or both"
            raise ValueError(msg)
        return self


class CircuitBreakers(_Model):
    """Limits on what this proxy sends to a cluster; over one a request gets 503 at once
    (x-meshpy-error: overflow, x-meshpy-overflow: the limit's name). A limit left out is
    not enforced."""

    max_connections: int | None = Field(
        default=None, ge=1, description="Upstream connections open to the cluster at once."
    )
    max_pending_requests: int | None = Field(
        default=None,
        ge=1,
        description="HTTP/1 requests waiting for a connection while at max_connections "
        "(HTTP/2 and TCP never wait: over max_connections they fail at once).",
    )
    max_requests: int | None = Field(
        default=None, ge=1, description="Requests (and TCP connections) in flight at once."
    )


class Cluster(_Model):
    """A set of upstream endpoints and how to pick one and connect to it."""

    name: Name = Field(description="Unique cluster name that listeners refer to.")
    endpoints: list[EndpointItem] = Field(
        default_factory=list,
        description='Upstream "ip:port" or {address, weight, zone}; none means every request '
        "gets 503.",
    )
    lb: Literal["round_robin", "least_request", "peak_ewma", "ring_hash", "maglev"] = Field(
        default="round_robin",
        description="How an endpoint is chosen for each request: in turn, the less busy of two, "
        "the faster and less busy of two (peak EWMA latency), or by a hash of the request "
        "(ring_hash, maglev: need hash_on).",
    )
    hash_on: HashOn | None = Field(
        default=None, description="What ring_hash and maglev hash; refused with other lb."
    )
    local_zone: Zone | None = Field(
        default=None,
        description="This proxy's zone: its endpoints are preferred while one is available.",
    )
    slow_start: SlowStart | None = Field(
        default=None, description="Ramp up endpoints that join the cluster while it serves."
    )
    outlier_detection: OutlierDetection | None = Field(
        default=None, description="Eject endpoints that keep failing. Absent: none are."
    )
    circuit_breakers: CircuitBreakers | None = Field(
        default=None, description="Limits on connections and requests. Absent: no limits."
    )
    protocol: Literal["http1", "http2"] = Field(
        default="http1",
        description="Upstream HTTP version (ignored for tcp listeners; with tls, always HTTP/2).",
    )
    connect_timeout: Duration = _duration_field(
        "2s", "Give up on an upstream connect after this long."
    )
    pool: Pool = Field(default_factory=Pool, description="Upstream connection pooling.")
    tls: ClusterTls | None = Field(
        default=None,
        description="Reach the endpoints over mTLS (HTTP as HTTP/2, ALPN h2). Absent: plaintext.",
    )
    retry_budget: RetryBudget = Field(
        default_factory=RetryBudget, description="Retries requests to the cluster may cause."
    )
    fault: Fault | None = Field(
        default=None, description="Delays and aborts injected into requests to the cluster."
    )

    @model_validator(mode="after")
    def _hash_on_with_hashing_lb(self) -> Self:
        hashing = self.lb in ("ring_hash", "maglev")
        if hashing and self.hash_on is None:
            msg = f"{self.lb} needs hash_on"
            raise ValueError(msg)
        if not hashing and self.hash_on is not None:
            msg = f"only ring_hash and maglev hash requests, not {self.lb}"
            raise ValueError(msg)
        return self


class Bootstrap(_Model):
    """Settings fixed for a proxy's lifetime: changing them needs a restart."""

    admin: SocketAddr | None = Field(
        default=None, description="ip:port of the admin listener (stats); none when omitted."
    )
    workers: int = Field(default=1, ge=1, le=64, description="Number of data plane threads.")
    max_connections: int = Field(
        default=20_000,
        ge=1,
        description="Connections open at once on all listeners together; more are refused.",
    )


class Snapshot(_Model):
    """The dynamic config: listeners and clusters, applied atomically as one version."""

    version: int = Field(
        default=0,
        ge=0,
        description="Snapshot version; 0 (the default) means one more than the last applied.",
    )
    listeners: list[Listener] = Field(default_factory=list, description="Listeners to serve.")
    clusters: list[Cluster] = Field(default_factory=list, description="Upstream clusters.")

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        _check_unique("clusters", "name", [c.name for c in self.clusters])
        _check_unique("listeners", "name", [lst.name for lst in self.listeners])
        _check_unique(
            "listeners",
            "address",
            [lst.address if not lst.address.endswith(":0") else None for lst in self.listeners],
        )
        known = {c.name for c in self.clusters}
        for i, listener in enumerate(self.listeners):
            if listener.name == "admin":
                msg = f'listeners[{i}].name: "admin" is reserved for the admin listener'
                raise ValueError(msg)
            _check_target(i, listener, known)
        return self


def _check_target(i: int, listener: Listener, known: set[str]) -> None:
    """Exactly one of cluster/routes, and every cluster they name exists."""
    if listener.cluster is not None and listener.routes:
        msg = f"listeners[{i}].routes: give either cluster or routes, not both"
        raise ValueError(msg)
    if listener.cluster is None and not listener.routes:
        msg = f"listeners[{i}].cluster: missing field `cluster`"
        raise ValueError(msg)
    if listener.routes and listener.protocol == "tcp":
        msg = f"listeners[{i}].routes: tcp listeners have no routes; name a cluster"
        raise ValueError(msg)
    if listener.cluster is not None and listener.cluster not in known:
        msg = f"listeners[{i}].cluster: no cluster named {listener.cluster!r}"
        raise ValueError(msg)
    for v, vhost in enumerate(listener.routes):
        for r, rule in enumerate(vhost.rules):
            at_rule = f"listeners[{i}].routes[{v}].rules[{r}]"
            _check_mirror(f"{at_rule}.filters", rule.filters, known)
            for b, backend in enumerate(rule.backends):
                if backend.cluster not in known:
                    at = f"{at_rule}.backends[{b}].cluster"
                    msg = f"{at}: no cluster named {backend.cluster!r}"
                    raise ValueError(msg)
                _check_mirror(f"{at_rule}.backends[{b}].filters", backend.filters, known)


def _check_mirror(at: str, filters: RouteFilters | None, known: set[str]) -> None:
    """A request_mirror names a cluster that exists."""
    mirror = filters.request_mirror if filters else None
    if mirror is not None and mirror.cluster not in known:
        msg = f"{at}.request_mirror.cluster: no cluster named {mirror.cluster!r}"
        raise ValueError(msg)


def _check_unique(kind: str, field: str, values: list[str | None]) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value is not None and value in seen:
            msg = f"{kind}[{i}].{field}: {value!r} is used twice"
            raise ValueError(msg)
        if value is not None:
            seen.add(value)


class IdentityPaths(_Model):
    """PEM files of the proxy's mTLS identity; relative paths are relative to the config file."""

    cert_chain: str = Field(
        min_length=1, description="The X.509-SVID, then its intermediates (PEM)."
    )
    key: str = Field(
        min_length=1, description='Its private key: PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY".'
    )
    roots: str = Field(min_length=1, description="Trust roots (PEM, one or more, all trusted).")

    def files(self, base: Path | None = None) -> IdentityFiles:
        """The three paths, relative ones resolved against ``base``."""
        return IdentityFiles.resolve(self.model_dump(), base)


class ProxyConfig(Bootstrap, Snapshot):
    """A whole proxy config file: the bootstrap keys (admin, workers, max_connections), a
    snapshot, and the identity files (read and reloaded by ``meshpy proxy run``)."""

    identity: IdentityPaths | None = Field(
        default=None,
        description="Files of the proxy's mTLS identity, loaded at start and on SIGHUP. "
        "Needed when a listener or cluster has tls.",
    )

    def bootstrap(self) -> Bootstrap:
        """Return the bootstrap part."""
        return Bootstrap.model_validate(self.model_dump(include=set(BOOTSTRAP_KEYS)))

    def snapshot(self) -> Snapshot:
        """Return the snapshot part."""
        return Snapshot.model_validate(self.model_dump(exclude={*BOOTSTRAP_KEYS, IDENTITY_KEY}))

    def bootstrap_json(self) -> str:
        """Return the JSON that ``_core.Proxy(...)`` takes."""
        return self.bootstrap().model_dump_json()

    def snapshot_json(self) -> str:
        """Return the JSON that ``_core.Proxy.apply(...)`` takes."""
        return self.snapshot().model_dump_json()


def format_loc(loc: tuple[int | str, ...]) -> str:
    """Spell a pydantic error location the way the core does: ``clusters[0].lb``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _as_json(value: BaseModel | Mapping[str, Any] | str | None, model: type[BaseModel]) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        value = model()
    elif not isinstance(value, BaseModel):
        value = model.model_validate(value)
    return value.model_dump_json()


class CertificateInfo(TypedDict):
    """What a certificate says: ``Proxy.set_identity`` returns it for the proxy's own."""

    identity: str | None
    not_before: float
    not_after: float
    serial: str
    issuer: str
    subject: str
    is_ca: bool


class Proxy:
    """A data plane proxy in this process; threads and sockets are owned by the Rust core.

    ``with Proxy(bootstrap, snapshot) as p:`` starts it and shuts it down on exit.
    Errors are the ``_core`` exceptions: ConfigError, BindError, IdentityError, StateError.
    """

    def __init__(
        self,
        bootstrap: Bootstrap | Mapping[str, Any] | str | None = None,
        snapshot: Snapshot | Mapping[str, Any] | str | None = None,
        *,
        grace_s: float = 10.0,
    ) -> None:
        """Create a stopped proxy and, if given, apply ``snapshot`` (validated, not bound)."""
        self._inner = _core.Proxy(_as_json(bootstrap, Bootstrap))
        self.grace_s = grace_s
        if snapshot is not None:
            self.apply(snapshot)

    @classmethod
    def from_config(
        cls,
        config: ProxyConfig | Mapping[str, Any],
        *,
        grace_s: float = 10.0,
        base: Path | None = None,
    ) -> Self:
        """Create a proxy from a whole config (bootstrap, snapshot and identity together).

        Relative identity paths are resolved against ``base`` (default: the working directory).
        """
        if not isinstance(config, ProxyConfig):
            config = ProxyConfig.model_validate(config)
        proxy = cls(config.bootstrap_json(), grace_s=grace_s)
        if config.identity is not None:
            pem = config.identity.files(base).read()
            proxy.set_identity(pem.cert_chain, pem.key, pem.roots)
        proxy.apply(config.snapshot_json())
        return proxy

    def start(self) -> dict[str, str]:
        """Bind the admin listener and listeners; return ``{name: "ip:port"}``."""
        return self._inner.start()

    def apply(self, snapshot: Snapshot | Mapping[str, Any] | str) -> int:
        """Validate and swap in a new snapshot; return the applied version."""
        return self._inner.apply(_as_json(snapshot, Snapshot))

    def addresses(self) -> dict[str, str]:
        """Return the bound addresses, ``{"admin": ..., "<listener>": ...}``."""
        return self._inner.addresses()

    def stats(self) -> dict[str, Any]:
        """Return the core's stats: version, readiness, listeners and clusters."""
        return self._inner.stats()

    def metrics(self) -> str:
        """Return the metrics in the Prometheus text format."""
        return self._inner.metrics()

    def ready(self) -> bool:
        """Whether the proxy is started with a snapshot, not shutting down, and has an
        identity if the snapshot uses tls."""
        return self._inner.ready()

    def not_ready_reason(self) -> str | None:
        """Why the proxy is not ready, or None when it is."""
        return self._inner.not_ready_reason()

    def set_identity(self, chain_pem: str, key_pem: str, roots_pem: str) -> CertificateInfo:
        """Put an mTLS identity in force for new handshakes; IdentityError leaves the old one."""
        return cast(CertificateInfo, self._inner.set_identity(chain_pem, key_pem, roots_pem))

    def identity(self) -> CertificateInfo | None:
        """The identity in force, or None before the first ``set_identity``."""
        return cast(CertificateInfo | None, self._inner.identity())

    def shutdown(self, grace_s: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish for up to ``grace_s``, then close."""
        self._inner.shutdown(self.grace_s if grace_s is None else grace_s)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a proxy config file."""
    schema = ProxyConfig.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m meshpy.dataplane --schema`` prints the JSON Schema of a config file."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["--schema"]:
        print("usage: python -m meshpy.dataplane --schema", file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
