"""The registry tables, as SQLAlchemy 2.0 typed ORM classes (one class per table).

``Revision`` is a single row whose ``value`` every change bumps in its own transaction
(``repository.bump_revision``), so anyone watching can tell that something changed.
Times are timezone-aware UTC in Python, whatever the database stores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "INSTANCE_STATES",
    "SPAN_KINDS",
    "SPAN_STATUSES",
    "Base",
    "ConfigAck",
    "Instance",
    "InstanceStats",
    "IssuedCertificate",
    "JoinToken",
    "Resource",
    "Revision",
    "Service",
    "Span",
    "UTCDateTime",
]

INSTANCE_STATES = ("starting", "healthy", "unhealthy", "draining")

NAME = String(63)
"""A DNS label: namespace, service, version."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = "naive datetime given to the registry; use an aware UTC one"
            raise ValueError(msg)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base with constraint names Alembic can refer to on every database."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
        list[Any]: JSONDocument,
    }


class Revision(Base):
    """The one global revision row (``id`` = 1)."""

    __tablename__ = "revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Service(Base):
    """A service in a namespace; created by the first registration of one of its instances."""

    __tablename__ = "services"

    namespace: Mapped[str] = mapped_column(NAME, primary_key=True)
    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    protocol: Mapped[str] = mapped_column(String(16), default="http")
    ports: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]


class Instance(Base):
    """One registered instance (a sidecar) of a service, with its lease and health."""

    __tablename__ = "instances"
    __table_args__ = (
        ForeignKeyConstraint(
            ["namespace", "service"], ["services.namespace", "services.name"], ondelete="RESTRICT"
        ),
        CheckConstraint(
            "state IN ({})".format(", ".join(f"'{s}'" for s in INSTANCE_STATES)), name="state"
        ),
        Index(None, "namespace", "service", "version"),
        Index(None, "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    namespace: Mapped[str] = mapped_column(NAME)
    service: Mapped[str] = mapped_column(NAME)
    version: Mapped[str | None] = mapped_column(NAME)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    address: Mapped[str] = mapped_column(String(45))
    inbound_port: Mapped[int]
    app_port: Mapped[int | None]
    admin_address: Mapped[str | None] = mapped_column(String(53))
    """The sidecar's admin listener, ``IP:PORT``: its /metrics for Prometheus."""
    zone: Mapped[str | None] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(16))
    passing_reports: Mapped[int] = mapped_column(default=0)
    """Consecutive passing health reports."""
    failing_reports: Mapped[int] = mapped_column(default=0)
    """Consecutive failing health reports."""
    lease_expires_at: Mapped[datetime]
    registered_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JoinToken(Base):
    """A join token: lets sidecars of one service register. Only a hash of the secret is kept."""

    __tablename__ = "join_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(NAME)
    service: Mapped[str] = mapped_column(NAME)
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]


class Resource(Base):
    """A user resource (HTTPRoute, BackendPolicy, AuthorizationPolicy): spec and status."""

    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("kind", "namespace", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(63))
    namespace: Mapped[str] = mapped_column(NAME)
    name: Mapped[str] = mapped_column(String(253))
    generation: Mapped[int] = mapped_column(BigInteger, default=1)
    """Grows by one each time the spec changes."""
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    annotations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    spec: Mapped[dict[str, Any]]
    status: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ConfigAck(Base):
    """The config snapshot version an instance last applied (one row per instance)."""

    __tablename__ = "config_acks"

    instance_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str | None] = mapped_column(String(64))
    """ETag of the snapshot applied (or rejected); compared with the current one for status."""
    error: Mapped[str | None] = mapped_column(Text)
    """Why the proxy rejected the snapshot it was sent; None when it applied it."""
    acked_at: Mapped[datetime]


class InstanceStats(Base):
    """The latest inbound traffic report of an instance (one row per instance).

    Cumulative counters since ``started_at``, as the sidecar sent them with its lease
    renewal; not part of the mesh config (writing it bumps no revision).
    """

    __tablename__ = "instance_stats"

    instance_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True
    )
    started_at: Mapped[datetime]
    """When the counters started from zero (the sidecar's proxy started)."""
    requests: Mapped[dict[str, Any]]
    """Requests answered by status class: {"2xx": 980, "5xx": 3}."""
    duration_buckets: Mapped[dict[str, Any]]
    """Cumulative request duration histogram: {"0.005": 12, ..., "+Inf": 983}."""
    reported_at: Mapped[datetime]


class IssuedCertificate(Base):
    """A workload certificate the CA issued (public data: the chain, never a key).

    No foreign keys: the record outlives the instance and the join token it names.
    """

    __tablename__ = "issued_certificates"
    __table_args__ = (
        Index(None, "instance_id", "issued_at"),
        Index(None, "namespace", "service", "issued_at"),
        Index(None, "issued_at"),
        Index(None, "not_after"),
    )

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)
    """Hex, lowercase."""
    identity: Mapped[str] = mapped_column(String(2048))
    """The SPIFFE ID in the certificate."""
    namespace: Mapped[str] = mapped_column(NAME)
    service: Mapped[str] = mapped_column(NAME)
    instance_id: Mapped[str | None] = mapped_column(String(36))
    token_id: Mapped[str] = mapped_column(String(32))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    issued_at: Mapped[datetime]
    chain_pem: Mapped[str] = mapped_column(Text)
    """The leaf, then the intermediate that signed it."""


SPAN_KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
"""OTLP's SpanKind, by its number."""
SPAN_STATUSES = ("unset", "ok", "error")
"""OTLP's Status.code, by its number."""


class Span(Base):
    """One span a sidecar exported over OTLP; not part of the mesh config (no revision).

    Times are unix nanoseconds, as OTLP sends them: a BIGINT on every database. A span
    sent twice (an exporter's retry) is stored once: (trace_id, span_id) is unique,
    which also makes it the index that reads a whole trace.
    """

    __tablename__ = "spans"
    __table_args__ = (
        UniqueConstraint("trace_id", "span_id"),
        Index(None, "service_name", "start_ns"),
        Index(None, "start_ns"),
        Index(None, "status_code", "start_ns"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    trace_id: Mapped[str] = mapped_column(String(32))
    """32 lowercase hex digits."""
    span_id: Mapped[str] = mapped_column(String(16))
    """16 lowercase hex digits."""
    parent_span_id: Mapped[str | None] = mapped_column(String(16))
    """None for a root span."""
    name: Mapped[str] = mapped_column(String(512))
    """The operation."""
    kind: Mapped[str] = mapped_column(String(16))
    """One of SPAN_KINDS."""
    start_ns: Mapped[int] = mapped_column(BigInteger)
    end_ns: Mapped[int] = mapped_column(BigInteger)
    duration_ns: Mapped[int] = mapped_column(BigInteger)
    status_code: Mapped[str] = mapped_column(String(8))
    """One of SPAN_STATUSES."""
    status_message: Mapped[str | None] = mapped_column(Text)
    service_name: Mapped[str] = mapped_column(String(255))
    """The resource attribute ``service.name``: the sidecar's service."""
    http_status_code: Mapped[int | None]
    """The attribute ``http.response.status_code``, if the span has one."""
    attributes: Mapped[dict[str, Any]]
    resource_attributes: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]
