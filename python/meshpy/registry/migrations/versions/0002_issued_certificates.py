"""Issued certificates: one row per workload certificate the CA signed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
NAME = sa.String(length=63)


def upgrade() -> None:
    op.create_table(
        "issued_certificates",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("identity", sa.String(length=2048), nullable=False),
        sa.Column("namespace", NAME, nullable=False),
        sa.Column("service", NAME, nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=True),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("not_before", TIME, nullable=False),
        sa.Column("not_after", TIME, nullable=False),
        sa.Column("issued_at", TIME, nullable=False),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_issued_certificates")),
    )
    op.create_index(
        op.f("ix_issued_certificates_instance_id_issued_at"),
        "issued_certificates",
        ["instance_id", "issued_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_issued_certificates_namespace_service_issued_at"),
        "issued_certificates",
        ["namespace", "service", "issued_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_issued_certificates_issued_at"), "issued_certificates", ["issued_at"], unique=False
    )
    op.create_index(
        op.f("ix_issued_certificates_not_after"), "issued_certificates", ["not_after"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_issued_certificates_not_after"), table_name="issued_certificates")
    op.drop_index(op.f("ix_issued_certificates_issued_at"), table_name="issued_certificates")
    op.drop_index(
        op.f("ix_issued_certificates_namespace_service_issued_at"),
        table_name="issued_certificates",
    )
    op.drop_index(
        op.f("ix_issued_certificates_instance_id_issued_at"), table_name="issued_certificates"
    )
    op.drop_table("issued_certificates")
