"""``/api/v1/stats``: golden metrics per service or per edge, over a recent window (admin).

The numbers come from the per-edge counters that sidecars send with their lease renewals,
kept by this server as a time series (``meshpy.stats.series``): 10 s slots for the last
hour. A server that restarted knows only what it has heard since (``since``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from meshpy.api import problems
from meshpy.api.deps import AdminDep, StateDep
from meshpy.api.schemas import DNS_LABEL, EdgeReport
from meshpy.api.state import AppState
from meshpy.durations import DURATION_PATTERN, parse_duration
from meshpy.registry import repository
from meshpy.registry.models import Instance
from meshpy.stats.query import Row, Selection, rows
from meshpy.stats.series import Counts, EdgeKey, End

__all__ = ["record", "router"]

router = APIRouter(prefix="/api/v1", tags=["stats"])

UNKNOWN = "unknown"


def record(
    state: AppState,
    instance: Instance,
    started_at: datetime,
    edges: list[EdgeReport],
) -> None:
    """Add an instance's edge report (cumulative counters) to the time series."""
    own = End(instance.namespace, instance.service, instance.version or UNKNOWN)
    counts: dict[EdgeKey, Counts] = {}
    for edge in edges:
        peer = End(edge.peer.namespace, edge.peer.service, edge.peer.version)
        if edge.direction == "inbound":
            key = EdgeKey("server", peer, own, edge.identity, edge.mtls)
        else:
            key = EdgeKey("client", own, peer, "", edge.mtls)
        counts[key] = Counts(
            dict(edge.responses),
            dict(edge.duration_buckets),
            dict(edge.grpc),
            {str(name): n for name, n in edge.tcp.items()},
        )
    state.traffic.record(instance.id, started_at, counts, time.time())


class ServiceRef(BaseModel):
    """A service and version ("unknown" where the reporting proxy didn't know)."""

    namespace: str
    service: str
    version: str


class Latency(BaseModel):
    """Request duration quantiles in seconds, interpolated within histogram buckets."""

    p50: float | None
    p95: float | None
    p99: float | None


class TcpStats(BaseModel):
    """Connections: open now, and bytes per second each way over the window."""

    open_connections: int = Field(description="As the sidecars last reported.")
    read_bytes_per_s: float = Field(description="From the edge's source (its client).")
    write_bytes_per_s: float = Field(description="To the edge's source.")


class Meshed(BaseModel):
    """The service version's instances: ready (healthy) and all registered."""

    ready: int
    total: int


class StatsRow(BaseModel):
    """One service's or one edge's golden metrics over the window."""

    destination: ServiceRef
    source: ServiceRef | None = Field(
        description="The caller: per edge, and with `to` (the service whose sidecars sent it)."
    )
    identity: str | None = Field(
        description="Per edge: the caller's verified SPIFFE ID (empty over plaintext)."
    )
    mtls: bool | None = Field(description="Per edge: whether the calls came over mTLS.")
    requests: int
    failures: int = Field(description="5xx responses, and gRPC responses other than OK.")
    success_rate: float | None = Field(description="Non-5xx share; null without requests.")
    rps: float = Field(description="Requests per second over the window.")
    latency_s: Latency
    status_codes: dict[str, int] = Field(description="Responses by status code.")
    grpc_statuses: dict[str, int] = Field(description="gRPC responses by grpc-status.")
    tcp: TcpStats
    meshed: Meshed | None = Field(description="Per service: the destination's instances.")


class StatsAnswer(BaseModel):
    """Golden metrics over a window."""

    by: Literal["service", "edge"]
    window_s: float
    resolution_s: float = Field(description="The series' slot: a window is whole slots.")
    since: datetime = Field(description="When this server began to keep traffic.")
    rows: list[StatsRow]


def _ref(end: End) -> ServiceRef:
    return ServiceRef(namespace=end.namespace, service=end.service, version=end.version)


def _meshed(views: list[repository.ServiceView], end: End) -> Meshed | None:
    for view in views:
        if view.namespace != end.namespace:
            continue
        own = view.version_of is None and view.name == end.service and end.version == UNKNOWN
        version = view.version_of == end.service and view.version == end.version
        if own or version:
            return Meshed(ready=view.states.get("healthy", 0), total=sum(view.states.values()))
    return None


def _row(row: Row, views: list[repository.ServiceView], by: str) -> StatsRow:
    return StatsRow(
        destination=_ref(row.destination),
        source=_ref(row.source) if row.source is not None else None,
        identity=row.identity,
        mtls=row.mtls,
        requests=row.requests,
        failures=row.counts.failures,
        success_rate=row.success_rate,
        rps=row.rps,
        latency_s=Latency(p50=row.latency(0.5), p95=row.latency(0.95), p99=row.latency(0.99)),
        status_codes={code: n for code, n in sorted(row.counts.responses.items()) if n},
        grpc_statuses={status: n for status, n in sorted(row.counts.grpc.items()) if n},
        tcp=TcpStats(
            open_connections=row.open_connections,
            read_bytes_per_s=row.bytes_per_s("read_bytes"),
            write_bytes_per_s=row.bytes_per_s("write_bytes"),
        ),
        meshed=_meshed(views, row.destination) if by == "service" and row.source is None else None,
    )


def _quiet_rows(
    views: list[repository.ServiceView], selection: Selection, found: list[Row], window_s: float
) -> list[Row]:
    """Rows without traffic for the selected service versions that had none, as Linkerd's
    stat lists every workload: each version of a service with versions, else the service."""
    seen = {row.destination for row in found}
    versioned = {(v.namespace, v.version_of) for v in views if v.version_of is not None}
    quiet: list[Row] = []
    for view in views:
        if view.version_of is not None:
            end = End(view.namespace, view.version_of, view.version or UNKNOWN)
        elif (view.namespace, view.name) in versioned:
            continue  # its versions have rows of their own
        else:
            end = End(view.namespace, view.name, UNKNOWN)
        if end in seen or not _selected(end, selection):
            continue
        quiet.append(Row(end, None, None, None, Counts(), window_s))
    return quiet


def _selected(end: End, s: Selection) -> bool:
    return (
        s.namespace in (None, end.namespace)
        and s.service in (None, end.service)
        and s.version in (None, end.version)
    )


def _known(views: list[repository.ServiceView], namespace: str | None, service: str) -> bool:
    return any(
        v.name == service and v.version_of is None and namespace in (None, v.namespace)
        for v in views
    )


Name = Annotated[str | None, Query(pattern=DNS_LABEL, max_length=63)]


@router.get("/stats")
async def get_stats(
    state: StateDep,
    _: AdminDep,
    namespace: Name = None,
    service: Name = None,
    version: Name = None,
    source: Annotated[
        str | None,
        Query(alias="from", pattern=DNS_LABEL, max_length=63, description="Only from this caller."),
    ] = None,
    destination: Annotated[
        str | None,
        Query(
            alias="to",
            pattern=DNS_LABEL,
            max_length=63,
            description="What the service's sidecars sent to this one (client side).",
        ),
    ] = None,
    window: Annotated[
        str, Query(pattern=DURATION_PATTERN, max_length=32, description="10s to 1h.")
    ] = "1m",
    by: Literal["service", "edge"] = "service",
) -> StatsAnswer:
    """Success rate, requests per second and latency quantiles per service or per edge."""
    series = state.traffic
    window_s = parse_duration(window).total_seconds()
    if not series.resolution_s <= window_s <= series.retention_s:
        raise problems.invalid(
            [
                problems.ErrorItem(
                    path="window",
                    message=f"{window!r} is outside {series.resolution_s:g}s to "
                    f"{series.retention_s:g}s (what this server keeps)",
                )
            ]
        )
    if version is not None and service is None:
        raise problems.invalid(
            [problems.ErrorItem(path="version", message="a version needs a service")]
        )
    views = await state.store.read(repository.list_services, None)
    for name in (service, source, destination):
        if name is not None and not _known(views, namespace, name):
            where = f" in namespace {namespace!r}" if namespace else ""
            raise problems.not_found(f"service {name!r}{where}")
    selection = Selection(namespace, service, version, source, destination)
    now = time.time()
    found = rows(
        series.window(now, window_s), selection, by, window_s, series.open_connections(now)
    )
    if by == "service" and source is None and destination is None:
        found = sorted(
            found + _quiet_rows(views, selection, found, window_s), key=lambda r: r.destination
        )
    return StatsAnswer(
        by=by,
        window_s=window_s,
        resolution_s=series.resolution_s,
        since=datetime.fromtimestamp(series.started, UTC),
        rows=[_row(row, views, by) for row in found],
    )
