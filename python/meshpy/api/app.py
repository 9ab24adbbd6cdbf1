"""The app factory: ``create_app(settings)`` returns the FastAPI app of one control plane.

Nothing is made at import time. The lifespan, in order: makes the data directory,
opens the database and brings its schema up to date (SQLite) or checks it (PostgreSQL:
a schema behind refuses to start), loads or creates the admin token, loads the
certificate authority (making it on the first start), then starts the background tasks
— the lease reaper, the change follower, the pruner of expired certificate records and
the trimmer of the trace store — and stops them, then the database, on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from meshpy.api import auth, problems
from meshpy.api.changes import ChangeFeed, follow_postgres, poll
from meshpy.api.distribution import Distributor
from meshpy.api.metrics import Metrics, MetricsMiddleware
from meshpy.api.ratelimit import TokenBuckets
from meshpy.api.routers import (
    explain,
    health,
    identity,
    instances,
    otlp,
    prometheus,
    proxies,
    resources,
    revision,
    services,
    stats,
    status,
    tap,
    tokens,
    traces,
)
from meshpy.api.state import AppState, lease_policy
from meshpy.api.store import Store, UnavailableError
from meshpy.ca.authority import Authority, Clock, utcnow
from meshpy.registry import migrations, repository
from meshpy.registry.db import Database, psycopg_conninfo
from meshpy.settings import Settings
from meshpy.snapshot import MeshIdentity, MeshTracing
from meshpy.stats.series import EdgeSeries

__all__ = ["create_app"]

log = logging.getLogger("meshpy.server")


def create_app(settings: Settings | None = None, *, clock: Clock = utcnow) -> FastAPI:
    """A new control-plane app; its lifespan opens the database and starts the tasks.

    ``clock`` is the certificate authority's time (tests move it to see a rotation through).
    """
    settings = settings if settings is not None else Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await _start(settings, metrics, clock)
        app.state.meshpy = state
        try:
            yield
        finally:
            await _stop(state)

    from meshpy import __version__

    app = FastAPI(
        title="meshpy control plane",
        summary="Service registry, resources and admin API of a meshpy mesh.",
        version=__version__,
        lifespan=lifespan,
        responses=problems.PROBLEM_RESPONSES,
        generate_unique_id_function=lambda route: route.name,
    )
    problems.install(app)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for module in (
        health,
        tokens,
        services,
        instances,
        resources,
        revision,
        proxies,
        identity,
        traces,
        otlp,
        status,
        explain,
        stats,
        prometheus,
        tap,
    ):
        app.include_router(module.router)
    return app


async def _start(settings: Settings, metrics: Metrics, clock: Clock) -> AppState:
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(
        settings.database_url, timeout_s=settings.db_timeout, pool_size=settings.db_workers
    )
    try:
        await asyncio.to_thread(migrations.prepare, db)
        admin_token = auth.load_or_create_admin_token(settings.admin_token_file)
        authority = await asyncio.to_thread(
            Authority.open, settings.ca_dir, settings.trust_domain, clock=clock
        )
    except BaseException:
        db.dispose()
        raise
    feed = ChangeFeed()
    store = Store(db, feed, deadline_s=settings.db_timeout, workers=settings.db_workers)
    state = AppState(
        settings=settings,
        store=store,
        feed=feed,
        admin_token=admin_token,
        policy=lease_policy(settings),
        metrics=metrics,
        distributor=Distributor(
            store,
            feed,
            MeshIdentity(
                trust_domain=authority.trust_domain,
                mtls=settings.mtls,
                authz_default=settings.authz_default,
            ),
            MeshTracing(sample_percent=settings.trace_sample_percent),
        ),
        authority=authority,
        cert_limits=TokenBuckets(settings.cert_rate / 60.0, settings.cert_burst),
        trace_limits=TokenBuckets(settings.trace_rate, settings.trace_burst),
        traffic=EdgeSeries(started=time.time()),
    )
    with contextlib.suppress(UnavailableError):
        await feed.changed(await store.read(repository.current_revision))
    state.tasks.append(asyncio.create_task(_reap(state), name="meshpy-lease-reaper"))
    state.tasks.append(asyncio.create_task(_follow(state), name="meshpy-change-follower"))
    state.tasks.append(asyncio.create_task(_prune(state), name="meshpy-certificate-pruner"))
    state.tasks.append(asyncio.create_task(_trim_traces(state), name="meshpy-trace-trimmer"))
    return state


STOP_WAIT_S = 5.0
"""How long shutdown waits for a transaction still running in a worker thread."""


async def _stop(state: AppState) -> None:
    for task in state.tasks:
        task.cancel()
    await asyncio.gather(*state.tasks, return_exceptions=True)
    # A background task's transaction (the trace trimmer runs one as the server starts)
    # may still be running in a worker thread.
    await state.store.aclose(wait_s=STOP_WAIT_S)
    state.store.db.dispose()


async def _reap(state: AppState) -> None:
    """Expire leases every ``reaper_interval`` seconds (runs until cancelled).

    Leases that ran out while no server was running are not the instances' fault: they
    could not renew. For one lease TTL after start they get the chance to, and only
    leases that end after the start are expired. A stopping server expires nothing, as it
    no longer takes renewals.
    """
    interval = state.settings.reaper_interval
    started = repository.utcnow()
    grace_until = started + state.policy.ttl
    while not state.feed.closing:
        try:
            now = repository.utcnow()
            expired = await state.store.write(
                repository.expire_leases,
                now=now,
                policy=state.policy,
                ended_after=started if now < grace_until else None,
            )
            if expired.unhealthy or expired.removed:
                log.info(
                    "leases: %d instance(s) expired, %d removed", expired.unhealthy, expired.removed
                )
        except UnavailableError:
            pass
        except Exception:
            log.exception("lease reaper")
        await asyncio.sleep(interval)


async def _prune(state: AppState, interval: float = 300.0) -> None:
    """Forget certificates expired longer than ``cert_retention`` ago (runs until cancelled)."""
    retention = timedelta(seconds=state.settings.cert_retention)
    while True:
        try:
            cutoff = state.authority.now() - retention
            await state.store.write(repository.prune_certificates, expired_before=cutoff)
        except UnavailableError:
            pass
        except Exception:
            log.exception("certificate pruner")
        await asyncio.sleep(interval)


async def _trim_traces(state: AppState, interval: float = 60.0) -> None:
    """Keep the trace store within ``trace_retention`` and ``trace_max_spans`` (runs until
    cancelled), a batch of deletions per transaction."""
    retention_ns = int(state.settings.trace_retention * 1e9)
    while True:
        try:
            deleted = repository.TRIM_BATCH
            while deleted >= repository.TRIM_BATCH and not state.feed.closing:
                deleted = await state.store.write(
                    repository.trim_spans,
                    started_before_ns=time.time_ns() - retention_ns,
                    max_spans=state.settings.trace_max_spans,
                )
        except UnavailableError:
            pass
        except Exception:
            log.exception("trace trimmer")
        await asyncio.sleep(interval)


async def _follow(state: AppState) -> None:
    """Feed other processes' changes into the change feed (runs until cancelled)."""

    async def read_revision() -> int:
        return await state.store.read(repository.current_revision)

    db = state.store.db
    if db.dialect == "postgresql":
        await follow_postgres(
            state.feed,
            psycopg_conninfo(db.url),
            read_revision,
            channel=repository.CHANGES_CHANNEL,
            connect_timeout=max(1, int(state.settings.db_timeout * 0.75)),
        )
    else:
        await poll(state.feed, read_revision, state.settings.change_poll_interval)
