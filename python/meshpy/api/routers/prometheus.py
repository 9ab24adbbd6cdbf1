"""``/api/v1/prometheus/targets``: Prometheus HTTP service discovery of the sidecars (admin)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from meshpy.api.deps import AdminDep, StoreDep
from meshpy.api.schemas import DNS_LABEL
from meshpy.registry import repository
from meshpy.registry.models import Instance

__all__ = ["META", "router"]

router = APIRouter(prefix="/api/v1/prometheus", tags=["prometheus"])

META = "__meta_meshpy_"
"""The prefix of the discovery labels (Prometheus drops ``__``-labels after relabelling)."""

_NOT_IN_A_NAME = re.compile(r"[^a-zA-Z0-9_]")


class TargetGroup(BaseModel):
    """One entry of Prometheus's ``http_sd_configs`` format: one sidecar's admin listener."""

    targets: list[str] = Field(description="The admin address, IP:PORT ([IPv6]:PORT).")
    labels: dict[str, str] = Field(description="Labels of every series scraped from it.")


def _labels(row: Instance) -> dict[str, str]:
    labels = {
        "namespace": row.namespace,
        "service": row.service,
        **({"version": row.version} if row.version else {}),
        f"{META}namespace": row.namespace,
        f"{META}service": row.service,
        f"{META}version": row.version or "",
        f"{META}instance": row.id,
        f"{META}state": row.state,
        f"{META}address": row.address,
        f"{META}zone": row.zone or "",
    }
    for key, value in sorted(row.labels.items()):
        labels.setdefault(f"{META}label_{_NOT_IN_A_NAME.sub('_', key)}", str(value))
    return labels


@router.get("/targets")
async def prometheus_targets(
    store: StoreDep,
    _: AdminDep,
    namespace: Annotated[
        str | None,
        Query(pattern=DNS_LABEL, max_length=63, description="Only this namespace's sidecars."),
    ] = None,
) -> list[TargetGroup]:
    """Every registered sidecar with an admin address, as Prometheus ``http_sd_configs`` wants.

    Point Prometheus at this URL with the admin token (``authorization: {type: Bearer,
    credentials_file: <home>/admin-token}``; http_sd needs the ``type``, it sends the bare
    token without it) and it scrapes each sidecar's ``/metrics`` (``metrics_path`` defaults
    to it). Instances in every state are listed (``__meta_meshpy_state`` tells which), as a
    draining or unhealthy sidecar still counts what it serves.

    Each target carries plain ``namespace``, ``service`` and ``version`` labels (no
    ``version`` when the instance has none): labels not starting with ``__`` become target
    labels, so every series is attributable to its workload without any
    ``relabel_configs``. They cannot clash with the proxy's own labels, which name the ends
    of an edge ``source_*`` and ``destination_*``. ``instance`` is left to Prometheus (the
    admin address, one per sidecar). The ``__meta_meshpy_*`` labels — namespace, service,
    version, instance (the registration id), state, address, zone (empty when unknown) and
    ``label_<key>`` per instance label (characters other than letters, digits and ``_``
    become ``_``) — are there for relabelling, and are dropped after it.
    """
    rows = await store.read(repository.list_scrape_targets, namespace)
    return [
        TargetGroup(targets=[row.admin_address], labels=_labels(row))
        for row in rows
        if row.admin_address is not None
    ]
