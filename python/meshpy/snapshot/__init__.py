"""Registry state to one sidecar's proxy snapshot: pure functions, no I/O, behind this one face.

``build_snapshot(state, instance_id)`` returns the JSON document that the sidecar's core
takes in ``Proxy.apply``:

- an ``outbound`` HTTP listener (the app's ``HTTP_PROXY``) that routes by ``Host``: every
  HTTP service of the mesh is a virtual host (``payment.default``, ``payment.default.svc``,
  and plain ``payment`` from the sidecar's own namespace), and so is every version service
  (``payment-v2`` for the instances of ``payment`` with version v2); their rules come from
  the HTTPRoutes attached to them (``routes``);
- a cluster ``<name>.<namespace>`` per service and version service, with its healthy
  endpoints and its BackendPolicy (``clusters``);
- a TCP listener ``upstream-<port>`` on 127.0.0.1 for each upstream the sidecar asked
  for (``SidecarPorts.upstreams``: ``meshpy run --upstream payment-db=5433``);
- for the sidecar's own instance, an ``inbound`` listener on its inbound port to the
  ``local-app`` cluster at ``127.0.0.1:<app_port>`` (none without an app port);
- the inbound listener's ``authorization``, from the AuthorizationPolicies that target the
  instance's service or its version service (``meshpy.authz``): sources become SPIFFE IDs
  of the mesh's trust domain, and the mesh default (``MeshIdentity.authz_default``, or
  all-unauthenticated without an identity) decides when no policy does; left out when
  there is nothing to enforce;
- with a mesh identity (``MeshState.identity``), mutual TLS between sidecars: the inbound
  listener terminates mTLS (``strict``: nothing else; ``permissive``: plaintext too), and
  every service cluster connects with mTLS and expects the service's SPIFFE identity
  ``spiffe://<trust domain>/ns/<namespace>/sa/<service>`` (a version service's instances
  carry the identity of the service they are a version of). Mode ``disabled`` (or no
  identity) keeps sidecars in plaintext;
- with mesh tracing (``MeshState.tracing``), a ``tracing`` section: the mesh's sampling,
  and the instance (service, namespace, version, id) as the spans' resource. Listeners
  say their ``direction``: the inbound one's spans are servers', the others' clients'.

Equal states give equal snapshots, byte for byte once dumped: everything is sorted except
route rules, whose order is meaningful. Instance labels are not sent to the data plane.

- ``state``: what a snapshot is built from (``MeshState`` and its parts).
- ``clusters``: the clusters, with BackendPolicies and mTLS.
- ``routes``: the virtual hosts and their rules, from HTTPRoutes.
- ``build``: the snapshot and its parts (outbound, inbound, upstreams) for ``SidecarPorts``.
"""

from __future__ import annotations

from meshpy.snapshot.build import (
    Part,
    SidecarPorts,
    Upstream,
    build_inbound,
    build_metrics,
    build_outbound,
    build_snapshot,
    build_tracing,
    build_upstreams,
)
from meshpy.snapshot.clusters import LOCAL_APP_CLUSTER, UNRESOLVED_CLUSTER
from meshpy.snapshot.state import (
    MTLS_MODES,
    InstanceInfo,
    MeshIdentity,
    MeshState,
    MeshTracing,
    MtlsMode,
    ServiceInfo,
    UnknownInstanceError,
    version_service_name,
)

__all__ = [
    "LOCAL_APP_CLUSTER",
    "MTLS_MODES",
    "UNRESOLVED_CLUSTER",
    "InstanceInfo",
    "MeshIdentity",
    "MeshState",
    "MeshTracing",
    "MtlsMode",
    "Part",
    "ServiceInfo",
    "SidecarPorts",
    "UnknownInstanceError",
    "Upstream",
    "build_inbound",
    "build_metrics",
    "build_outbound",
    "build_snapshot",
    "build_tracing",
    "build_upstreams",
    "version_service_name",
]
