"""Hotline: calls and the tickets they filed or joined, the call-back flag on tickets, and the
reconciliation checkpoints.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("callback_requested", sa.Boolean(), server_default="0", nullable=False))
    op.create_table(
        "calls",
        sa.Column("id", ID, nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("message_id", ID, nullable=True),
        sa.Column("from_number", sa.String(length=32), nullable=False),
        sa.Column("to_number", sa.String(length=32), nullable=False),
        sa.Column("caller_name", sa.Text(), nullable=True),
        sa.Column("menu_choice", sa.String(length=8), nullable=True),
        sa.Column("twilio_status", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("recording_sid", sa.String(length=64), nullable=True),
        sa.Column("recording_seconds", sa.Integer(), nullable=True),
        sa.Column("recording_error", sa.String(length=16), nullable=True),
        sa.Column("attachment_id", ID, nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("transcript_confidence", sa.Float(), nullable=True),
        sa.Column("transcript_source", sa.String(length=16), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "outcome IN ('in_progress', 'voicemail', 'missed', 'answered_by_desk')",
            name=op.f("ck_calls_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_calls_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_calls_message_id_messages"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["attachment_id"],
            ["attachments.id"],
            name=op.f("fk_calls_attachment_id_attachments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_calls_call_sid")),
        sa.UniqueConstraint("recording_sid", name=op.f("uq_calls_recording_sid")),
    )
    op.create_index(op.f("ix_calls_from_number_started_at"), "calls", ["from_number", "started_at"])
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"])
    op.create_index(op.f("ix_calls_ticket_id"), "calls", ["ticket_id"])
    op.create_table(
        "hotline_checkpoints",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("covered_until", TS, nullable=True),
        sa.Column("last_run_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_hotline_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("hotline_checkpoints")
    op.drop_index(op.f("ix_calls_ticket_id"), table_name="calls")
    op.drop_index(op.f("ix_calls_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_from_number_started_at"), table_name="calls")
    op.drop_table("calls")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("callback_requested")
