"""Liveness: the processes that claim work, with their heartbeats, so that the claims of a
process that died are taken up again in seconds rather than after a claim timeout.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("process_started", sa.String(32), nullable=True),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
        sa.Column("gone_at", TS, nullable=True),
        sa.Column("gone_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('alive', 'gone')", name=op.f("ck_workers_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_index(op.f("ix_workers_node_state"), "workers", ["node", "state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_workers_node_state"), table_name="workers")
    op.drop_table("workers")
