"""Initial registry schema: services, instances, join tokens, resources, config acks, revision.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIME = sa.DateTime(timezone=True)
NAME = sa.String(length=63)


def upgrade() -> None:
    revision_table = op.create_table(
        "revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revision")),
    )
    op.bulk_insert(revision_table, [{"id": 1, "value": 0}])
    op.create_table(
        "services",
        sa.Column("namespace", NAME, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("ports", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", name=op.f("pk_services")),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("namespace", NAME, nullable=False),
        sa.Column("service", NAME, nullable=False),
        sa.Column("version", NAME, nullable=True),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("inbound_port", sa.Integer(), nullable=False),
        sa.Column("app_port", sa.Integer(), nullable=True),
        sa.Column("zone", sa.String(length=63), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("passing_reports", sa.Integer(), nullable=False),
        sa.Column("failing_reports", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", TIME, nullable=False),
        sa.Column("registered_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.CheckConstraint(
            "state IN ('starting', 'healthy', 'unhealthy', 'draining')",
            name=op.f("ck_instances_state"),
        ),
        sa.ForeignKeyConstraint(
            ["namespace", "service"],
            ["services.namespace", "services.name"],
            name=op.f("fk_instances_namespace_service_services"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )
    op.create_index(
        op.f("ix_instances_lease_expires_at"), "instances", ["lease_expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_instances_namespace_service_version"),
        "instances",
        ["namespace", "service", "version"],
        unique=False,
    )
    op.create_table(
        "join_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("namespace", NAME, nullable=False),
        sa.Column("service", NAME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_join_tokens")),
    )
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=63), nullable=False),
        sa.Column("namespace", NAME, nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("annotations", JSON, nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resources")),
        sa.UniqueConstraint(
            "kind", "namespace", "name", name=op.f("uq_resources_kind_namespace_name")
        ),
    )
    op.create_table(
        "config_acks",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("acked_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_config_acks_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_config_acks")),
    )


def downgrade() -> None:
    op.drop_table("config_acks")
    op.drop_table("resources")
    op.drop_table("join_tokens")
    op.drop_index(op.f("ix_instances_namespace_service_version"), table_name="instances")
    op.drop_index(op.f("ix_instances_lease_expires_at"), table_name="instances")
    op.drop_table("instances")
    op.drop_table("services")
    op.drop_table("revision")
