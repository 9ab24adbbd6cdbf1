"""BackendPolicy (policy.meshpy.io/v1alpha1): how clients reach a Service's endpoints.

A GEP-713 direct policy: ``targetRefs`` name Services in the policy's namespace. It sets
the load balancer (``peak_ewma`` unless told otherwise), outlier detection, connection
limits, the retry budget, slow start and fault injection.

```yaml
apiVersion: policy.meshpy.io/v1alpha1
kind: BackendPolicy
metadata: {name: payment, namespace: default}
spec:
  targetRefs: [{group: "", kind: Service, name: payment}]
  loadBalancer: {type: ring_hash, hashOn: {header: x-user}}
  outlierDetection: {consecutive5xx: 5, interval: 10s, baseEjectionTime: 30s}
  connectionLimits: {maxConnections: 1000}
  retryBudget: {percent: 20, minRetriesPerSecond: 10}
  slowStart: {window: 30s}
  faultInjection: {abort: {percent: 1, status: 503}}
```
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from meshpy.resources._common import (
    HeaderName,
    PolicyTargetReference,
    PositiveDuration,
    SpecModel,
    field_error,
    unique_targets,
    value_error,
)

__all__ = [
    "BackendPolicySpec",
    "ConnectionLimits",
    "FaultAbort",
    "FaultDelay",
    "FaultInjection",
    "HashOn",
    "LoadBalancer",
    "OutlierDetection",
    "RetryBudget",
    "SlowStart",
]

Percent = Annotated[int, Field(ge=0, le=100)]

LoadBalancerType = Literal["round_robin", "least_request", "peak_ewma", "ring_hash", "maglev"]


class HashOn(SpecModel):
    """What a consistent hash (ring_hash, maglev) is computed from: exactly one of the three."""

    header: HeaderName | None = None
    cookie: HeaderName | None = None
    source_ip: bool | None = Field(default=None, alias="sourceIP")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if self.source_ip is False:
            raise field_error("sourceIP", "set it to true, or leave it out")
        given = [v for v in (self.header, self.cookie, self.source_ip) if v is not None]
        if len(given) != 1:
            raise value_error("give exactly one of header, cookie or sourceIP")
        return self


class LoadBalancer(SpecModel):
    """How an endpoint is chosen for each request."""

    type: LoadBalancerType = "peak_ewma"
    hash_on: HashOn | None = None

    @model_validator(mode="after")
    def _hash_on_for_hashes(self) -> Self:
        hashing = self.type in ("ring_hash", "maglev")
        if hashing and self.hash_on is None:
            raise field_error("hashOn", f"required for type {self.type}")
        if not hashing and self.hash_on is not None:
            raise field_error("hashOn", f"only for ring_hash and maglev, not {self.type}")
        return self


class OutlierDetection(SpecModel):
    """Eject an endpoint for a while after consecutive failures."""

    consecutive_5xx: Annotated[int, Field(ge=1)] | None = Field(default=5, alias="consecutive5xx")
    consecutive_gateway_errors: Annotated[int, Field(ge=1)] | None = None
    interval: PositiveDuration = timedelta(seconds=10)
    base_ejection_time: PositiveDuration = timedelta(seconds=30)
    max_ejection_percent: Percent = 10


class ConnectionLimits(SpecModel):
    """Most connections and requests to the Service from one client proxy."""

    max_connections: Annotated[int, Field(ge=1)] | None = None
    max_pending_requests: Annotated[int, Field(ge=1)] | None = None
    max_requests: Annotated[int, Field(ge=1)] | None = None


class RetryBudget(SpecModel):
    """Retries allowed on top of requests: ``percent`` of them, but at least N per second."""

    percent: Percent = 20
    min_retries_per_second: Annotated[int, Field(ge=0)] = 10


class SlowStart(SpecModel):
    """Ramp a new endpoint's share of requests up over ``window``."""

    window: PositiveDuration


class FaultDelay(SpecModel):
    """Delay ``percent`` of requests by ``duration``."""

    percent: Percent
    duration: PositiveDuration


class FaultAbort(SpecModel):
    """Answer ``percent`` of requests with ``status`` instead of forwarding them."""

    percent: Percent
    status: Annotated[int, Field(ge=200, le=599)]


class FaultInjection(SpecModel):
    """Injected delays and errors, for testing resilience."""

    delay: FaultDelay | None = None
    abort: FaultAbort | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.delay is None and self.abort is None:
            raise value_error("give delay, abort or both")
        return self


class BackendPolicySpec(SpecModel):
    """The spec of a BackendPolicy."""

    target_refs: Annotated[
        list[PolicyTargetReference],
        Field(min_length=1, max_length=16),
        AfterValidator(unique_targets),
    ]
    load_balancer: LoadBalancer = Field(default_factory=LoadBalancer)
    outlier_detection: OutlierDetection | None = None
    connection_limits: ConnectionLimits | None = None
    retry_budget: RetryBudget = Field(default_factory=RetryBudget)
    slow_start: SlowStart | None = None
    fault_injection: FaultInjection | None = None
