"""What the request handlers of one app share, set up by the app's lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from meshpy.api.changes import ChangeFeed
from meshpy.api.distribution import Distributor
from meshpy.api.metrics import Metrics
from meshpy.api.ratelimit import TokenBuckets
from meshpy.api.store import Store
from meshpy.ca.authority import Authority
from meshpy.registry.leases import LeasePolicy
from meshpy.settings import Settings
from meshpy.stats.series import EdgeSeries

__all__ = ["AppState", "lease_policy"]


@dataclass
class AppState:
    """The shared state of one app (``request.app.state.meshpy``)."""

    settings: Settings
    store: Store
    feed: ChangeFeed
    admin_token: str
    policy: LeasePolicy
    metrics: Metrics
    distributor: Distributor
    authority: Authority
    """The certificate authority (``meshpy.ca``)."""
    cert_limits: TokenBuckets
    """Certificate requests per join token."""
    trace_limits: TokenBuckets
    """OTLP trace exports per token (the admin's and each join token)."""
    traffic: EdgeSeries
    """Every edge's traffic over the last hour, from the sidecars' lease renewals."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def lease_policy(settings: Settings) -> LeasePolicy:
    """The lease state machine's numbers from the settings."""
    return LeasePolicy(
        ttl=timedelta(seconds=settings.lease_ttl),
        removal_grace=timedelta(seconds=settings.removal_grace),
        threshold=settings.health_threshold,
    )
