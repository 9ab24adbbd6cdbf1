"""Instance stats: the latest inbound traffic report of each instance.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "instance_stats",
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("requests", JSON, nullable=False),
        sa.Column("duration_buckets", JSON, nullable=False),
        sa.Column("reported_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_instance_stats_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_id", name=op.f("pk_instance_stats")),
    )


def downgrade() -> None:
    op.drop_table("instance_stats")
