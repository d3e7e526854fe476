"""Working time: SLA deadlines, triage, resolution and auto-close on tickets; calendar overrides.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMESTAMPS = (
    "occurred_at",
    "triaged_at",
    "triage_due_at",
    "response_due_at",
    "resolution_due_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "auto_close_at",
    "triage_breached_at",
    "response_warned_at",
    "response_breached_at",
    "resolution_warned_at",
    "resolution_breached_at",
    "sla_occurred_at",
    "sla_paused_at",
    "sla_next_check_at",
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("team", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("calendar", sa.String(length=64), nullable=True))
        for name in TIMESTAMPS:
            batch.add_column(sa.Column(name, TS, nullable=True))
        batch.add_column(sa.Column("triaged_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("first_response_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("sla_priority", sa.String(length=2), nullable=True))
        batch.add_column(sa.Column("sla_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("sla_paused_seconds", sa.Float(), server_default="0", nullable=False))
        batch.add_column(sa.Column("sla_snapshot", sa.Text(), nullable=True))
    op.create_index(op.f("ix_tickets_sla_next_check_at"), "tickets", ["sla_next_check_at"])
    op.create_index(op.f("ix_tickets_sla_status"), "tickets", ["sla_status"])
    op.create_index(op.f("ix_tickets_status_auto_close_at"), "tickets", ["status", "auto_close_at"])
    op.create_table(
        "calendar_overrides",
        sa.Column("id", ID, nullable=False),
        sa.Column("calendar", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("kind IN ('holiday', 'workday')", name=op.f("ck_calendar_overrides_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_overrides")),
        sa.UniqueConstraint("calendar", "day", name=op.f("uq_calendar_overrides_calendar_day")),
    )


def downgrade() -> None:
    op.drop_table("calendar_overrides")
    op.drop_index(op.f("ix_tickets_status_auto_close_at"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_sla_next_check_at"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_sla_status"), table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        for name in (
            *TIMESTAMPS,
            "team",
            "calendar",
            "triaged_by",
            "first_response_by",
            "resolved_by",
            "sla_priority",
            "sla_status",
            "sla_paused_seconds",
            "sla_snapshot",
        ):
            batch.drop_column(name)
