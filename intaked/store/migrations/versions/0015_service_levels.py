"""Service levels (seed 003): each ticket's standard completion time, its first and current
commitment to the requester, how often the commitment was extended or the ticket escalated, and
the requester's satisfaction; indexes on ``resolved_at`` and ``closed_at`` for the service-level
report. Existing tickets get their resolution deadline as standard time and both commitments.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SCORE = "satisfaction_score IS NULL OR satisfaction_score BETWEEN 1 AND 5"


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("standard_due_at", TS, nullable=True))
        batch.add_column(sa.Column("first_commitment_at", TS, nullable=True))
        batch.add_column(sa.Column("commitment_at", TS, nullable=True))
        batch.add_column(sa.Column("sla_commitment_at", TS, nullable=True))
        batch.add_column(sa.Column("extension_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("escalation_count", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("satisfaction_score", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("satisfaction_comment", sa.Text(), nullable=True))
        batch.add_column(sa.Column("satisfaction_at", TS, nullable=True))
        batch.create_check_constraint(op.f("ck_tickets_satisfaction_score"), SCORE)
        batch.create_index(op.f("ix_tickets_resolved_at"), ["resolved_at"])
        batch.create_index(op.f("ix_tickets_closed_at"), ["closed_at"])
    op.execute(
        "UPDATE tickets SET standard_due_at = resolution_due_at, first_commitment_at = resolution_due_at,"
        " commitment_at = resolution_due_at, sla_commitment_at = resolution_due_at"
    )


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index(op.f("ix_tickets_closed_at"))
        batch.drop_index(op.f("ix_tickets_resolved_at"))
        batch.drop_constraint(op.f("ck_tickets_satisfaction_score"), type_="check")
        for column in (
            "satisfaction_at",
            "satisfaction_comment",
            "satisfaction_score",
            "escalation_count",
            "extension_count",
            "sla_commitment_at",
            "commitment_at",
            "first_commitment_at",
            "standard_due_at",
        ):
            batch.drop_column(column)
