"""``/api/v1/.../services``: services and their endpoints, version services included (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from meshpy.api import problems
from meshpy.api.deps import AdminDep, SettingsDep, StoreDep
from meshpy.api.schemas import (
    DNS_LABEL,
    EndpointPublic,
    InstanceStats,
    ServiceList,
    ServicePublic,
    ServiceStats,
    ServiceSummary,
)
from meshpy.registry import repository
from meshpy.stats.histogram import bucket_bound

__all__ = ["NamespacePath", "ServicePath", "router"]

router = APIRouter(prefix="/api/v1", tags=["services"])

NamespacePath = Annotated[str, Path(pattern=DNS_LABEL, max_length=63, examples=["default"])]
ServicePath = Annotated[str, Path(pattern=DNS_LABEL, max_length=63, examples=["payment"])]


def summary(view: repository.ServiceView) -> ServiceSummary:
    """The API form of a service without its endpoints."""
    return ServiceSummary(
        namespace=view.namespace,
        name=view.name,
        protocol=view.protocol,
        ports=view.ports,
        created_at=view.created_at,
        version_of=view.version_of,
        version=view.version,
        endpoints_ready=view.states.get("healthy", 0),
        endpoints_total=sum(view.states.values()),
    )


@router.get("/services")
async def list_all_services(store: StoreDep, _: AdminDep) -> ServiceList:
    """Services of every namespace, version services included."""
    views = await store.read(repository.list_services, None)
    return ServiceList(items=[summary(v) for v in views])


@router.get("/namespaces/{namespace}/services")
async def list_services(namespace: NamespacePath, store: StoreDep, _: AdminDep) -> ServiceList:
    """Services of one namespace, version services included."""
    views = await store.read(repository.list_services, namespace)
    return ServiceList(items=[summary(v) for v in views])


@router.get("/namespaces/{namespace}/services/{service}")
async def get_service(
    namespace: NamespacePath, service: ServicePath, store: StoreDep, _: AdminDep
) -> ServicePublic:
    """One service with its endpoints and their states.

    ``payment-v2`` is the version service of ``payment``: only the instances of
    ``payment`` registered with version ``v2``.
    """
    view = await store.read(repository.get_service, namespace, service)
    if view is None:
        raise problems.not_found(f"service {namespace}/{service}")
    endpoints = [EndpointPublic.model_validate(i) for i in view.endpoints or []]
    return ServicePublic(**summary(view).model_dump(), endpoints=endpoints)


@router.get("/namespaces/{namespace}/services/{service}/stats")
async def get_service_stats(
    namespace: NamespacePath,
    service: ServicePath,
    store: StoreDep,
    settings: SettingsDep,
    _: AdminDep,
    version: Annotated[
        str | None,
        Query(
            pattern=DNS_LABEL,
            max_length=63,
            description="Only the instances of this version (v2: those of payment-v2).",
        ),
    ] = None,
) -> ServiceStats:
    """Inbound traffic of a service's instances, from their sidecars' latest reports.

    Counters are cumulative: ``requests`` by status class and the request duration
    histogram ``duration_buckets`` add up every registered instance's latest report, and
    ``instances`` lists each one with its own (to take per-instance differences: a
    restarted sidecar starts again from zero, with a new ``started_at``).
    """
    rows = await store.read(repository.service_stats, namespace, service, version)
    if rows is None:
        raise problems.not_found(f"service {namespace}/{service}")
    items = []
    requests: dict[str, int] = {}
    buckets: dict[str, int] = {}
    for instance, report in rows:
        own_requests = {k: int(v) for k, v in report.requests.items()} if report else {}
        own_buckets = {k: int(v) for k, v in report.duration_buckets.items()} if report else {}
        for cls, count in own_requests.items():
            requests[cls] = requests.get(cls, 0) + count
        for le, count in own_buckets.items():
            buckets[le] = buckets.get(le, 0) + count
        items.append(
            InstanceStats.model_validate(
                {
                    "id": instance.id,
                    "version": instance.version,
                    "state": instance.state,
                    "reported_at": report.reported_at if report else None,
                    "started_at": report.started_at if report else None,
                    "requests": own_requests,
                    "duration_buckets": own_buckets,
                }
            )
        )
    return ServiceStats(
        namespace=namespace,
        service=service,
        version=version,
        reported_every_s=settings.renew_interval,
        requests=dict(sorted(requests.items())),
        duration_buckets=dict(sorted(buckets.items(), key=lambda item: bucket_bound(item[0]))),
        instances=items,
    )


@router.delete("/namespaces/{namespace}/services/{service}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_service(
    namespace: NamespacePath, service: ServicePath, store: StoreDep, _: AdminDep
) -> None:
    """Forget a service that has no instances left (409 while it has some)."""
    try:
        deleted = await store.write(
            repository.delete_service, namespace, service, now=repository.utcnow()
        )
    except repository.ServiceInUseError:
        raise problems.conflict(
            f"service {namespace}/{service} still has instances; deregister them first"
        ) from None
    if not deleted:
        raise problems.not_found(f"service {namespace}/{service}")
