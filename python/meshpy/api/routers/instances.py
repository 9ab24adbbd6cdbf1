"""``/api/v1/namespaces/{ns}/services/{svc}/instances``: register, renew, drain, deregister.

A sidecar calls these with the join token of its service (or the admin token):
register once, then ``PUT .../lease`` every ``renew_every_s`` with its app's health;
``DELETE`` on a graceful stop. A sidecar whose instance is gone (404 on renewal) registers
again.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, status

from meshpy.api import problems
from meshpy.api.auth import Principal
from meshpy.api.deps import JoinTokenDep, StateDep
from meshpy.api.routers import stats as stats_router
from meshpy.api.routers.services import NamespacePath, ServicePath
from meshpy.api.schemas import HealthReport, InstanceCreate, InstancePublic, Registration
from meshpy.api.state import AppState
from meshpy.registry import repository
from meshpy.registry.leases import Health
from meshpy.registry.models import Instance

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1/namespaces/{namespace}/services/{service}/instances", tags=["instances"]
)

InstancePath = Annotated[UUID, Path(description="The id the registration returned.")]


def _check_scope(who: Principal, namespace: str, service: str) -> None:
    if not who.may_manage(namespace, service):
        raise problems.forbidden(
            f"this join token is for {who.namespace}/{who.service}, not {namespace}/{service}"
        )


def _registration(state: AppState, row: Instance) -> Registration:
    public = InstancePublic.model_validate(row)
    return Registration(
        **public.model_dump(),
        lease_ttl_s=state.settings.lease_ttl,
        renew_every_s=state.settings.renew_interval,
    )


def _not_registered(namespace: str, service: str, instance_id: UUID) -> problems.ProblemError:
    return problems.not_found(f"instance {instance_id} of {namespace}/{service}")


@router.post("", status_code=status.HTTP_201_CREATED)
async def register_instance(
    namespace: NamespacePath,
    service: ServicePath,
    body: InstanceCreate,
    state: StateDep,
    who: JoinTokenDep,
) -> Registration:
    """Register an instance (state ``starting``); creates the service if it is new."""
    _check_scope(who, namespace, service)
    if body.version is not None and len(service) + 1 + len(body.version) > 63:
        raise problems.invalid(
            [
                problems.ErrorItem(
                    path="version",
                    message=f"'{service}-{body.version}' (the version service) is longer "
                    "than 63 characters",
                )
            ]
        )
    new = repository.NewInstance(
        address=body.address,
        inbound_port=body.inbound_port,
        version=body.version,
        labels=body.labels,
        app_port=body.app_port,
        admin_address=body.admin_address,
        zone=body.zone,
        protocol=body.protocol,
    )
    try:
        row = await state.store.write(
            repository.register_instance,
            namespace,
            service,
            new,
            now=repository.utcnow(),
            policy=state.policy,
        )
    except repository.ProtocolConflictError as err:
        raise problems.conflict(str(err)) from None
    return _registration(state, row)


@router.get("/{instance_id}")
async def get_instance(
    namespace: NamespacePath,
    service: ServicePath,
    instance_id: InstancePath,
    state: StateDep,
    who: JoinTokenDep,
) -> InstancePublic:
    """One registered instance."""
    _check_scope(who, namespace, service)
    row = await state.store.read(repository.get_instance, namespace, service, str(instance_id))
    if row is None:
        raise _not_registered(namespace, service, instance_id)
    return InstancePublic.model_validate(row)


@router.put("/{instance_id}/lease")
async def renew_lease(
    namespace: NamespacePath,
    service: ServicePath,
    instance_id: InstancePath,
    body: HealthReport,
    state: StateDep,
    who: JoinTokenDep,
) -> Registration:
    """Renew the lease and report the application's health and inbound traffic.

    ``stats`` (optional) becomes the instance's latest traffic report, which
    ``GET .../services/{service}/stats`` adds up; an invalid one is refused whole
    (the lease is not renewed).
    """
    _check_scope(who, namespace, service)
    stats = None
    if body.stats is not None:
        stats = repository.InboundReport(
            started_at=body.stats.started_at,
            requests={str(k): v for k, v in body.stats.requests.items()},
            duration_buckets=dict(body.stats.duration_buckets),
        )
    row = await state.store.write(
        repository.renew_lease,
        namespace,
        service,
        str(instance_id),
        Health(body.health),
        now=repository.utcnow(),
        policy=state.policy,
        stats=stats,
    )
    if row is None:
        raise _not_registered(namespace, service, instance_id)
    if body.stats is not None and body.stats.edges:
        stats_router.record(state, row, body.stats.started_at, body.stats.edges)
    return _registration(state, row)


@router.post("/{instance_id}/drain")
async def drain_instance(
    namespace: NamespacePath,
    service: ServicePath,
    instance_id: InstancePath,
    state: StateDep,
    who: JoinTokenDep,
) -> InstancePublic:
    """Stop sending new traffic to the instance; it stays registered until it leaves."""
    _check_scope(who, namespace, service)
    row = await state.store.write(
        repository.drain_instance, namespace, service, str(instance_id), now=repository.utcnow()
    )
    if row is None:
        raise _not_registered(namespace, service, instance_id)
    return InstancePublic.model_validate(row)


@router.delete("/{instance_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deregister_instance(
    namespace: NamespacePath,
    service: ServicePath,
    instance_id: InstancePath,
    state: StateDep,
    who: JoinTokenDep,
) -> None:
    """Deregister the instance at once."""
    _check_scope(who, namespace, service)
    removed = await state.store.write(
        repository.deregister_instance,
        namespace,
        service,
        str(instance_id),
        now=repository.utcnow(),
    )
    if not removed:
        raise _not_registered(namespace, service, instance_id)
    state.traffic.forget(str(instance_id))
