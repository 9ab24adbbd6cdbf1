"""Request and response bodies of the REST API (``*Create`` in, ``*Public`` out).

Requests forbid unknown fields; names follow Kubernetes (DNS labels for namespaces,
services and versions). Resource documents are not modelled here: they go through
``meshpy.resources``, the one validation path for YAML, JSON and Python objects.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from meshpy.durations import DURATION_PATTERN
from meshpy.names import DNS_LABEL
from meshpy.stats.histogram import bucket_bound

__all__ = [
    "DNS_LABEL",
    "DNS_SUBDOMAIN",
    "EndpointPublic",
    "HealthReport",
    "InboundStats",
    "InstanceCreate",
    "InstancePublic",
    "InstanceStats",
    "Name",
    "Registration",
    "ServiceList",
    "ServicePublic",
    "ServiceStats",
    "ServiceSummary",
    "TokenCreate",
    "TokenCreated",
    "TokenList",
    "TokenPublic",
]

"""A DNS label (RFC 1123): lowercase letters, digits and '-', at most 63 characters."""

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
"""A DNS subdomain: DNS labels joined by dots, at most 253 characters."""

Name = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]

_LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
LabelKey = Annotated[str, StringConstraints(pattern=_LABEL_KEY, max_length=317)]
LabelValue = Annotated[str, StringConstraints(pattern=_LABEL_VALUE, max_length=63)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _ip_address(value: str) -> str:
    return str(ipaddress.ip_address(value))


IPAddress = Annotated[
    str,
    StringConstraints(max_length=45),
    AfterValidator(_ip_address),
    Field(description="An IPv4 or IPv6 address.", examples=["10.0.0.7"]),
]


def _socket_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        msg = "must be IP:PORT ([IPv6]:PORT), with a port from 1 to 65535"
        raise ValueError(msg)
    ip = ipaddress.ip_address(host[1:-1] if bracketed else host)
    if ip.version == 6 and not bracketed:
        msg = "an IPv6 address needs brackets: [IPv6]:PORT"
        raise ValueError(msg)
    return f"[{ip}]:{int(port)}" if ip.version == 6 else f"{ip}:{int(port)}"


SocketAddress = Annotated[
    str,
    StringConstraints(max_length=53),
    AfterValidator(_socket_address),
    Field(description="IP:PORT, or [IPv6]:PORT.", examples=["10.0.0.7:9901"]),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- tokens ---


class TokenCreate(_In):
    """Ask for a join token for the sidecars of one service."""

    namespace: Name = "default"
    service: Name
    ttl: Annotated[str, StringConstraints(pattern=DURATION_PATTERN, max_length=32)] = Field(
        default="24h", description='How long the token is valid: "30m", "24h", "720h".'
    )


class TokenPublic(BaseModel):
    """A join token, without its secret."""

    id: str
    namespace: str
    service: str
    expires_at: datetime
    created_at: datetime


class TokenCreated(TokenPublic):
    """A new join token; ``token`` is shown this once and never again."""

    token: str = Field(description="The bearer token for the sidecars: mpj_<id>.<secret>.")


class TokenList(BaseModel):
    """Join tokens, newest first."""

    items: list[TokenPublic]


# --- instances ---


class InstanceCreate(_In):
    """What a sidecar says about its instance when it registers."""

    version: Name | None = Field(
        default=None, description="Also makes the instance an endpoint of <service>-<version>."
    )
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    address: IPAddress
    inbound_port: Port = Field(description="The sidecar's inbound (mTLS) port.")
    app_port: Port | None = Field(default=None, description="The application's own port.")
    admin_address: SocketAddress | None = Field(
        default=None,
        description="The sidecar's admin listener (/metrics, /stats): what Prometheus scrapes "
        "(GET /api/v1/prometheus/targets).",
    )
    zone: Name | None = Field(default=None, description="Locality, for zone-aware balancing.")
    protocol: Literal["http", "grpc", "tcp"] | None = Field(
        default=None,
        description="What the service speaks; sets it when the service has no instances yet "
        "(new services are http unless told). 409 if it contradicts running instances.",
    )


StatusClass = Literal["1xx", "2xx", "3xx", "4xx", "5xx"]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
BucketBound = Annotated[
    str,
    StringConstraints(pattern=r"^(\+Inf|[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)$", max_length=32),
]
MAX_BUCKETS = 64


StatusCode = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{2}$")]
"""Any three-digit code: an app may answer 299 or 599, and its sidecar counts what it got."""
PeerIdentity = Annotated[
    str, StringConstraints(pattern=r"^(|unknown|spiffe://[!-~]+)$", max_length=2048)
]
GrpcStatus = Annotated[str, StringConstraints(pattern=r"^([0-9]|1[0-6]|other)$")]
MAX_EDGES = 2048
"""Edges in one report: the proxy labels at most 1,024 callers per inbound listener."""
Histogram = Annotated[
    dict[BucketBound, Count],
    Field(
        max_length=MAX_BUCKETS,
        description='A cumulative request duration histogram: {"0.005": 12, ..., "+Inf": 983}. '
        "Counts never decrease as the bound grows; +Inf is required with any bucket.",
    ),
]


def _check_cumulative(buckets: Mapping[str, int]) -> None:
    """Raise ValueError unless ``buckets`` is a cumulative histogram (or empty)."""
    if not buckets:
        return
    if "+Inf" not in buckets:
        msg = "duration_buckets needs a +Inf bucket"
        raise ValueError(msg)
    ordered = sorted(buckets.items(), key=lambda item: bucket_bound(item[0]))
    for (lower, below), (upper, count) in itertools.pairwise(ordered):
        if bucket_bound(lower) == bucket_bound(upper):
            msg = f"duration_buckets names one bound twice: {lower!r} and {upper!r}"
            raise ValueError(msg)
        if count < below:
            msg = (
                f"duration_buckets must be cumulative: le={upper!r} counts {count}, "
                f"fewer than le={lower!r} ({below})"
            )
            raise ValueError(msg)


class EdgePeer(_In):
    """The other end of an edge, as the reporting proxy's snapshot names it."""

    namespace: Name
    service: Name
    version: Name = Field(description='"unknown" when the proxy does not know it.')


class EdgeReport(_In):
    """One edge's cumulative counters, as the reporting sidecar's proxy counted them."""

    direction: Literal["inbound", "outbound"] = Field(
        description="inbound: requests into the reporting instance (peer = the caller); "
        "outbound: requests it sent (peer = the callee)."
    )
    peer: EdgePeer
    identity: PeerIdentity = Field(
        default="", description="The caller's verified SPIFFE ID (inbound over mTLS)."
    )
    mtls: bool
    responses: dict[StatusCode, Count] = Field(
        default_factory=dict,
        max_length=900,
        description='Responses by status code: {"200": 980, "503": 3}.',
    )
    duration_buckets: Histogram = Field(default_factory=dict)
    grpc: dict[GrpcStatus, Count] = Field(
        default_factory=dict,
        description='gRPC responses by grpc-status: {"0": 97, "5": 3}; "other" for codes past 16.',
    )
    tcp: dict[Literal["opened", "closed", "read_bytes", "write_bytes"], Count] = Field(
        default_factory=dict,
        description="Connections opened and closed, and bytes read from and written to the "
        "edge's source (the client of its connections).",
    )

    @model_validator(mode="after")
    def _cumulative(self) -> EdgeReport:
        _check_cumulative(self.duration_buckets)
        return self


class InboundStats(_In):
    """A cumulative summary of a sidecar's traffic: its inbound listener, and every edge."""

    started_at: datetime = Field(
        description="When the counters started from zero (the sidecar's proxy started); "
        "a new value means they were reset."
    )
    requests: dict[StatusClass, Count] = Field(
        description='Requests answered, by status class: {"2xx": 980, "5xx": 3}.'
    )
    duration_buckets: Histogram = Field(
        default_factory=dict,
        description="The inbound request duration histogram (every inbound edge added up).",
    )
    edges: list[EdgeReport] = Field(
        default_factory=list,
        max_length=MAX_EDGES,
        description="Per-edge counters, inbound and outbound; GET /api/v1/stats reads them.",
    )

    @model_validator(mode="after")
    def _cumulative(self) -> InboundStats:
        _check_cumulative(self.duration_buckets)
        seen: set[tuple[object, ...]] = set()
        for edge in self.edges:
            peer = edge.peer
            key = (
                edge.direction,
                peer.namespace,
                peer.service,
                peer.version,
                edge.identity,
                edge.mtls,
            )
            if key in seen:
                msg = (
                    f"edges names one edge twice: {edge.direction} {peer.namespace}/{peer.service}"
                )
                raise ValueError(msg)
            seen.add(key)
        return self


class HealthReport(_In):
    """A lease renewal, with the application's health (and its inbound traffic)."""

    health: Literal["passing", "failing", "critical"] = Field(
        description="The app's health: failing flips the instance to unhealthy after "
        "consecutive reports; critical (the app exited) at once."
    )
    stats: InboundStats | None = Field(
        default=None,
        description="The inbound listener's counters; the latest report of each instance is "
        "kept (absent: the previous report stays).",
    )


class InstancePublic(BaseModel):
    """A registered instance and its lease."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    namespace: str
    service: str
    version: str | None
    labels: dict[str, str]
    address: str
    inbound_port: int
    app_port: int | None
    admin_address: str | None
    zone: str | None
    state: Literal["starting", "healthy", "unhealthy", "draining"]
    lease_expires_at: datetime
    registered_at: datetime


class Registration(InstancePublic):
    """A registered instance, and how to keep it registered."""

    lease_ttl_s: float = Field(description="The lease lasts this long after each renewal.")
    renew_every_s: float = Field(description="Renew (PUT .../lease) this often.")


# --- services ---


class EndpointPublic(BaseModel):
    """One instance of a service, as an endpoint."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    address: str
    inbound_port: int
    app_port: int | None
    version: str | None
    zone: str | None
    labels: dict[str, str]
    state: Literal["starting", "healthy", "unhealthy", "draining"]
    lease_expires_at: datetime


class ServiceSummary(BaseModel):
    """A service; a version service has ``version_of`` and ``version`` set."""

    namespace: str
    name: str
    protocol: str
    ports: list[Any]
    created_at: datetime
    version_of: str | None = None
    version: str | None = None
    endpoints_ready: int = Field(description="Healthy endpoints.")
    endpoints_total: int


class ServicePublic(ServiceSummary):
    """A service with its endpoints."""

    endpoints: list[EndpointPublic]


class ServiceList(BaseModel):
    """Services sorted by namespace and name."""

    items: list[ServiceSummary]


class InstanceStats(BaseModel):
    """The latest inbound report of one instance (counters are zero before its first)."""

    id: str
    version: str | None
    state: Literal["starting", "healthy", "unhealthy", "draining"]
    reported_at: datetime | None = Field(description="When the report came; None: none yet.")
    started_at: datetime | None = Field(description="When its counters started from zero.")
    requests: dict[str, int] = Field(description="Requests answered, by status class.")
    duration_buckets: dict[str, int] = Field(description="Cumulative duration histogram.")


class ServiceStats(BaseModel):
    """Inbound traffic of a service's (or one version's) instances: cumulative counters.

    ``requests`` and ``duration_buckets`` add up the latest report of every registered
    instance. An instance's counters restart from zero when its sidecar restarts (a new
    ``started_at``), and a leaving instance takes its counters with it: to measure an
    interval, take each instance's difference between two readings.
    """

    namespace: str
    service: str
    version: str | None
    reported_every_s: float = Field(description="How often instances report (renew).")
    requests: dict[str, int]
    duration_buckets: dict[str, int]
    instances: list[InstanceStats]
