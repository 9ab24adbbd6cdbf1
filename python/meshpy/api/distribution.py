"""Config distribution: snapshots per sidecar, built from one mesh state per revision.

Versions and ETags:

- a snapshot's ``version`` is the registry revision it was built at;
- its ETag is a digest of its content without the version and without the address of
  the outbound listener (the sidecar's own choice). A sidecar sends the ETag of
  the config it runs (``If-None-Match``); the server answers only when the content
  differs, so a change elsewhere in the registry that does not touch this sidecar's
  config wakes nothing. Every server computes the same ETag from the same state, so a
  sidecar may move between servers sharing one database.

Cost: the registry is read once per revision (not once per watcher), and the outbound
part — every service's virtual host and cluster, the bulk of a snapshot — is built and
encoded once per revision, namespace and zone; a sidecar's own part is a few hundred bytes.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from meshpy import snapshot
from meshpy.api.changes import ChangeFeed
from meshpy.api.store import Store
from meshpy.registry.meshstate import load_mesh_state

__all__ = ["Built", "Distributor", "etag_of"]


_CANONICAL = snapshot.SidecarPorts()
"""The outbound address parts are built and digested with; each sidecar's port goes in after."""
_CANONICAL_ADDRESS = f'"address":"{_CANONICAL.outbound_host}:{_CANONICAL.outbound}"'


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class _Outbound:
    """The encoded outbound part of one namespace at one revision, ready to splice."""

    listener: str
    joined_before: str
    """Encoded clusters sorting before the local app's cluster, joined."""
    joined_after: str
    """Encoded clusters sorting after it, joined."""
    digest: str


@dataclass(frozen=True)
class Built:
    """One sidecar's snapshot, encoded."""

    version: int
    etag: str
    body: bytes


def _digest(parts: list[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def etag_of(
    outbound_digest: str,
    own_listeners: list[str],
    own_clusters: list[str],
    tracing: str = "",
    metrics: str = "",
) -> str:
    """The ETag of a snapshot: its shared part's digest plus the sidecar's own part (its
    listeners, clusters, tracing and metrics sections)."""
    own_tracing = ["|", tracing] if tracing else []
    own_metrics = ["|metrics", metrics] if metrics else []
    return _digest(
        [outbound_digest, *own_listeners, "|", *own_clusters, *own_tracing, *own_metrics]
    )


class Distributor:
    """Builds and caches snapshots for the sidecars this server answers."""

    def __init__(
        self,
        store: Store,
        feed: ChangeFeed,
        identity: snapshot.MeshIdentity | None = None,
        tracing: snapshot.MeshTracing | None = None,
    ) -> None:
        self._store = store
        self._feed = feed
        self._identity = identity
        self._tracing = tracing
        self._mesh: snapshot.MeshState | None = None
        self._outbound: dict[tuple[str, str | None], _Outbound] = {}
        self._lock = asyncio.Lock()
        self.watchers = 0
        self.last_load_s = 0.0

    async def mesh(self) -> snapshot.MeshState:
        """The mesh state at the newest revision known, read once for all waiters."""
        mesh = self._mesh
        if mesh is not None and mesh.revision >= self._feed.revision:
            return mesh
        async with self._lock:
            mesh = self._mesh
            if mesh is not None and mesh.revision >= self._feed.revision:
                return mesh
            started = time.perf_counter()
            mesh = await self._store.read(load_mesh_state)
            if self._identity is not None or self._tracing is not None:
                mesh = dataclasses.replace(mesh, identity=self._identity, tracing=self._tracing)
            self.last_load_s = time.perf_counter() - started
            self._mesh, self._outbound = mesh, {}
            await self._feed.changed(mesh.revision)
            return mesh

    def build(
        self,
        mesh: snapshot.MeshState,
        instance_id: str,
        outbound_port: int,
        upstreams: tuple[snapshot.Upstream, ...] = (),
    ) -> Built:
        """The snapshot of one sidecar; raises ``snapshot.UnknownInstanceError``.

        Like the outbound port, the upstream listeners are the sidecar's own choice and
        depend otherwise only on which services exist (in the outbound digest): the ETag
        leaves them out, so any server, and ``meshpy proxy status``, computes the same.
        """
        own = mesh.instance(instance_id)
        outbound = self._outbound_part(mesh, own.namespace, own.zone)
        inbound = snapshot.build_inbound(mesh, own)
        own_listeners = [_encode(item) for item in inbound.listeners]
        # The own part's only cluster is the local app's; it goes where its name sorts.
        own_clusters = [_encode(item) for item in inbound.clusters]
        listener = outbound.listener
        if outbound_port != _CANONICAL.outbound:
            # The outbound listener's address comes right after its name.
            here = f'"address":"{_CANONICAL.outbound_host}:{outbound_port}"'
            listener = listener.replace(_CANONICAL_ADDRESS, here, 1)
        clusters = ",".join(
            part for part in (outbound.joined_before, *own_clusters, outbound.joined_after) if part
        )
        ports = snapshot.SidecarPorts(outbound=outbound_port, upstreams=upstreams)
        upstream_listeners = [
            _encode(item) for item in snapshot.build_upstreams(mesh, own.namespace, ports)
        ]
        tracing = "" if mesh.tracing is None else _encode(snapshot.build_tracing(mesh, own))
        metrics = _encode(snapshot.build_metrics(own))
        body = '{"version":%d,"listeners":[%s],"clusters":[%s],"metrics":%s%s}' % (  # noqa: UP031
            mesh.revision,
            ",".join([*own_listeners, listener, *upstream_listeners]),
            clusters,
            metrics,
            f',"tracing":{tracing}' if tracing else "",
        )
        etag = etag_of(outbound.digest, own_listeners, own_clusters, tracing, metrics)
        return Built(mesh.revision, etag, body.encode())

    def _outbound_part(
        self, mesh: snapshot.MeshState, namespace: str, zone: str | None
    ) -> _Outbound:
        cached = self._outbound.get((namespace, zone))
        if cached is None or self._mesh is not mesh:
            part = snapshot.build_outbound(mesh, namespace, _CANONICAL, zone=zone)
            names = [c["name"] for c in part.clusters]
            encoded = [_encode(c) for c in part.clusters]
            at = bisect.bisect(names, snapshot.LOCAL_APP_CLUSTER)
            listener = _encode(part.listeners[0])
            cached = _Outbound(
                listener=listener,
                joined_before=",".join(encoded[:at]),
                joined_after=",".join(encoded[at:]),
                digest=_digest([listener, "|", *encoded]),
            )
            if self._mesh is mesh:
                self._outbound[(namespace, zone)] = cached
        return cached

    async def wait_for_change(
        self,
        instance_id: str,
        etag: str | None,
        wait_s: float,
        outbound_port: int,
        *,
        newer_than: int | None = None,
        upstreams: tuple[snapshot.Upstream, ...] = (),
    ) -> Built | None:
        """The sidecar's snapshot once its ETag differs from ``etag`` (at once if it does
        already), or None after ``wait_s`` seconds without a change. Without an ETag,
        ``newer_than`` waits for a version (revision) above it instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        self.watchers += 1
        try:
            while True:
                mesh = await self.mesh()
                built = self.build(mesh, instance_id, outbound_port, upstreams)
                if etag is None and newer_than is not None:
                    if built.version > newer_than:
                        return built
                elif built.etag != etag:
                    return built
                remaining = deadline - loop.time()
                if remaining <= 0 or self._feed.closing:
                    return None
                await self._feed.wait_newer(mesh.revision, remaining)
        finally:
            self.watchers -= 1
