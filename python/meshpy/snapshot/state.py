"""What a snapshot is built from: the registry's services, instances, resources and identity."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from meshpy.authz import AuthzDefault
from meshpy.errors import MeshpyError
from meshpy.resources import Resource
from meshpy.resources._common import is_dns_label

__all__ = [
    "MTLS_MODES",
    "InstanceInfo",
    "MeshIdentity",
    "MeshService",
    "MeshState",
    "MeshTracing",
    "MtlsMode",
    "ServiceInfo",
    "UnknownInstanceError",
    "version_service_name",
]

MtlsMode = Literal["strict", "permissive", "disabled"]
MTLS_MODES: tuple[MtlsMode, ...] = ("strict", "permissive", "disabled")
"""The mesh-wide mTLS modes of sidecar inbound listeners."""


@dataclass(frozen=True, kw_only=True)
class MeshIdentity:
    """The mesh's trust domain, mTLS mode, and who may call a service no policy decides on."""

    trust_domain: str
    mtls: MtlsMode = "strict"
    authz_default: AuthzDefault = "all-unauthenticated"


@dataclass(frozen=True, kw_only=True)
class MeshTracing:
    """The mesh's tracing: the share of the traces that start at a sidecar that are sampled."""

    sample_percent: float = 1.0


@dataclass(frozen=True, kw_only=True)
class ServiceInfo:
    """A registered service."""

    namespace: str
    name: str
    protocol: Literal["http", "grpc", "tcp"] = "http"
    """grpc: HTTP routed like http, and the app is reached over HTTP/2 (h2c)."""
    ports: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class InstanceInfo:
    """A registered instance (one sidecar and its app)."""

    id: str
    namespace: str
    service: str
    version: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    address: str
    inbound_port: int
    app_port: int | None = None
    zone: str | None = None
    state: Literal["starting", "healthy", "unhealthy", "draining"] = "starting"


@dataclass(frozen=True, kw_only=True)
class MeshState:
    """Everything a snapshot is built from; ``routes`` and policies in creation order."""

    services: tuple[ServiceInfo, ...] = ()
    instances: tuple[InstanceInfo, ...] = ()
    routes: tuple[Resource, ...] = ()
    backend_policies: tuple[Resource, ...] = ()
    authorization_policies: tuple[Resource, ...] = ()
    tracing_policies: tuple[Resource, ...] = ()
    revision: int = 0
    identity: MeshIdentity | None = None
    tracing: MeshTracing | None = None
    """None: sidecars pass trace headers through untouched and record no span."""

    @property
    def mtls(self) -> MeshIdentity | None:
        """The identity settings when sidecars talk to each other over mutual TLS, else None."""
        if self.identity is None or self.identity.mtls == "disabled":
            return None
        return self.identity

    def service_keys(self) -> frozenset[tuple[str, str]]:
        """Every existing ``(namespace, name)``, version services included (for statuses)."""
        return frozenset(self.service_index())

    def service_index(self) -> Mapping[tuple[str, str], MeshService]:
        """Services, version services included, with their endpoints; computed once per state."""
        cached: dict[tuple[str, str], MeshService] | None = self.__dict__.get("_service_index")
        if cached is None:
            cached = _services(self)
            # A frozen dataclass still has a __dict__: memoise without __setattr__.
            self.__dict__["_service_index"] = cached
        return cached

    def endpoint_instances(self, namespace: str, name: str) -> list[InstanceInfo]:
        """The instances that are endpoints of a service or version service (``payment-v2``):
        healthy, with an address traffic can reach."""
        return [
            inst
            for inst in self.instances
            if inst.namespace == namespace
            and name in (inst.service, version_service_name(inst.service, inst.version))
            and _endpoint(inst) is not None
        ]

    def instance(self, instance_id: str) -> InstanceInfo:
        """The instance with this id; raises UnknownInstanceError."""
        index: dict[str, InstanceInfo] | None = self.__dict__.get("_instance_index")
        if index is None:
            index = {i.id: i for i in self.instances}
            self.__dict__["_instance_index"] = index
        try:
            return index[instance_id]
        except KeyError:
            raise UnknownInstanceError(instance_id) from None


class UnknownInstanceError(MeshpyError, LookupError):
    """No instance with the given id is registered."""


def version_service_name(service: str, version: str | None) -> str | None:
    """``payment`` + ``v2`` -> ``payment-v2``; None when there is no valid such name."""
    if not version:
        return None
    name = f"{service}-{version}"
    return name if is_dns_label(name) else None


@dataclass
class MeshService:
    """A service or version service as snapshots see it (``MeshState.service_index``)."""

    protocol: str
    parent: str | None = None
    endpoints: dict[str, str | None] = field(default_factory=dict)
    """``address:port`` -> zone of the instance (None when it has none)."""


def _services(state: MeshState) -> dict[tuple[str, str], MeshService]:
    services: dict[tuple[str, str], MeshService] = {}
    for info in state.services:
        if is_dns_label(info.namespace) and is_dns_label(info.name):
            services[(info.namespace, info.name)] = MeshService(info.protocol)
    for inst in state.instances:
        if not (is_dns_label(inst.namespace) and is_dns_label(inst.service)):
            continue
        base = services.setdefault((inst.namespace, inst.service), MeshService("http"))
        endpoint = _endpoint(inst)
        names = [inst.service]
        version = version_service_name(inst.service, inst.version)
        if version is not None:
            services.setdefault((inst.namespace, version), MeshService(base.protocol, inst.service))
            names.append(version)
        if endpoint is not None:
            for name in names:
                services[(inst.namespace, name)].endpoints[endpoint] = inst.zone
    return services


def _endpoint(inst: InstanceInfo) -> str | None:
    if inst.state != "healthy" or not 0 < inst.inbound_port < 65536:
        return None
    try:
        ip = ipaddress.ip_address(inst.address)
    except ValueError:
        return None
    if ip.is_unspecified:
        return None
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{host}:{inst.inbound_port}"
