"""Every query of the registry, in one module per kind of row; this package is their one face.

Each function takes a Session inside a transaction the caller opened
(``Database.transaction``) and commits; nothing here commits or knows HTTP.

Concurrency: a function that changes what the mesh config is made of first calls
``lock_changes`` (PostgreSQL: a row lock on the revision row; SQLite: its write lock
already serialises writers), then changes rows, then ``bump_revision``, which also sends
the PostgreSQL notification in the same transaction. Changes are therefore applied one
at a time and their revisions are in commit order. A lease renewal that flips no state
changes no config and takes no global lock.
"""

from __future__ import annotations

from meshpy.registry.repository._shared import (
    CHANGES_CHANNEL,
    JOIN_TOKEN_PREFIX,
    _insert_ignore,  # noqa: F401 - tests reach it
    bump_revision,
    committed_revision,
    current_revision,
    lock_changes,
    service_keys,
    utcnow,
)
from meshpy.registry.repository.certificates import (
    CertificateValidity,
    NewCertificate,
    latest_certificates,
    list_certificates,
    prune_certificates,
    record_certificate,
)
from meshpy.registry.repository.instances import (
    Expired,
    InboundReport,
    NewInstance,
    deregister_instance,
    drain_instance,
    expire_leases,
    find_instance,
    get_instance,
    lease_expiries,
    list_acks,
    list_scrape_targets,
    record_ack,
    register_instance,
    renew_lease,
)
from meshpy.registry.repository.resources import (
    Applied,
    delete_resource,
    get_resource,
    list_resources,
    put_resource,
    refresh_statuses,
    resource_document,
)
from meshpy.registry.repository.services import (
    ProtocolConflictError,
    ServiceInUseError,
    ServiceView,
    delete_service,
    get_service,
    list_services,
    service_stats,
)
from meshpy.registry.repository.spans import (
    TRIM_BATCH,
    NewSpan,
    TraceOrder,
    TraceSummary,
    count_spans,
    find_traces,
    get_trace,
    record_spans,
    trim_spans,
)
from meshpy.registry.repository.stats import RegistryStats, registry_stats
from meshpy.registry.repository.tokens import (
    create_join_token,
    delete_join_token,
    list_join_tokens,
    verify_join_token,
)

__all__ = [
    "CHANGES_CHANNEL",
    "JOIN_TOKEN_PREFIX",
    "TRIM_BATCH",
    "Applied",
    "CertificateValidity",
    "Expired",
    "InboundReport",
    "NewCertificate",
    "NewInstance",
    "NewSpan",
    "ProtocolConflictError",
    "RegistryStats",
    "ServiceInUseError",
    "ServiceView",
    "TraceOrder",
    "TraceSummary",
    "bump_revision",
    "committed_revision",
    "count_spans",
    "create_join_token",
    "current_revision",
    "delete_join_token",
    "delete_resource",
    "delete_service",
    "deregister_instance",
    "drain_instance",
    "expire_leases",
    "find_instance",
    "find_traces",
    "get_instance",
    "get_resource",
    "get_service",
    "get_trace",
    "latest_certificates",
    "lease_expiries",
    "list_acks",
    "list_certificates",
    "list_join_tokens",
    "list_resources",
    "list_scrape_targets",
    "list_services",
    "lock_changes",
    "prune_certificates",
    "put_resource",
    "record_ack",
    "record_certificate",
    "record_spans",
    "refresh_statuses",
    "register_instance",
    "registry_stats",
    "renew_lease",
    "resource_document",
    "service_keys",
    "service_stats",
    "trim_spans",
    "utcnow",
    "verify_join_token",
]
