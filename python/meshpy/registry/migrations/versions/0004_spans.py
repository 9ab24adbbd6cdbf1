"""Spans: the trace store that the OTLP receiver writes and the trace queries read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
NANOS = sa.BigInteger()


def upgrade() -> None:
    op.create_table(
        "spans",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("parent_span_id", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("start_ns", NANOS, nullable=False),
        sa.Column("end_ns", NANOS, nullable=False),
        sa.Column("duration_ns", NANOS, nullable=False),
        sa.Column("status_code", sa.String(length=8), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("service_name", sa.String(length=255), nullable=False),
        sa.Column("http_status_code", sa.Integer(), nullable=True),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("resource_attributes", JSON, nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spans")),
        sa.UniqueConstraint("trace_id", "span_id", name=op.f("uq_spans_trace_id_span_id")),
    )
    op.create_index(
        op.f("ix_spans_service_name_start_ns"), "spans", ["service_name", "start_ns"], unique=False
    )
    op.create_index(op.f("ix_spans_start_ns"), "spans", ["start_ns"], unique=False)
    op.create_index(
        op.f("ix_spans_status_code_start_ns"), "spans", ["status_code", "start_ns"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_spans_status_code_start_ns"), table_name="spans")
    op.drop_index(op.f("ix_spans_start_ns"), table_name="spans")
    op.drop_index(op.f("ix_spans_service_name_start_ns"), table_name="spans")
    op.drop_table("spans")
