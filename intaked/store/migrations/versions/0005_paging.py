"""Routing and paging: what the rules suggested on tickets, on-call overrides, pages, their
attempts, and the webhook receipts that make provider callbacks idempotent.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TICKET_COLUMNS = (
    "category",
    "suggested_priority",
    "suggested_by",
    "suggestion_trusted",
    "requester_department",
    "requester_site",
    "incident_commander",
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("category", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("suggested_priority", sa.String(length=2), nullable=True))
        batch.add_column(sa.Column("suggested_by", sa.Text(), nullable=True))
        batch.add_column(sa.Column("suggestion_trusted", sa.Boolean(), server_default="0", nullable=False))
        batch.add_column(sa.Column("requester_department", sa.Text(), nullable=True))
        batch.add_column(sa.Column("requester_site", sa.Text(), nullable=True))
        batch.add_column(sa.Column("incident_commander", sa.String(length=128), nullable=True))
        batch.create_check_constraint(
            op.f("ck_tickets_suggested_priority"),
            "suggested_priority IS NULL OR suggested_priority IN ('P1', 'P2', 'P3', 'P4')",
        )
    op.create_index(op.f("ix_tickets_priority_status"), "tickets", ["priority", "status"])
    op.create_table(
        "oncall_overrides",
        sa.Column("id", ID, nullable=False),
        sa.Column("schedule", sa.String(length=64), nullable=False),
        sa.Column("person", sa.String(length=128), nullable=False),
        sa.Column("replaces", sa.String(length=128), nullable=True),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("ends_at", TS, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_oncall_overrides_span")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_overrides")),
    )
    op.create_index(
        op.f("ix_oncall_overrides_schedule_starts_at"), "oncall_overrides", ["schedule", "starts_at"]
    )
    op.create_table(
        "pages",
        sa.Column("id", ID, nullable=False),
        sa.Column("ticket_id", ID, nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("unconfirmed", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("next_step_at", TS, nullable=True),
        sa.Column("reply_code", sa.String(length=8), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.Column("ack_channel", sa.String(length=16), nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("provider_down_since", TS, nullable=True),
        sa.Column("fallback_sent_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "state IN ('active', 'acknowledged', 'exhausted', 'cancelled')", name=op.f("ck_pages_state")
        ),
        sa.CheckConstraint("priority IN ('P1', 'P2', 'P3', 'P4')", name=op.f("ck_pages_priority")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_pages_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
        sa.UniqueConstraint("reply_code", name=op.f("uq_pages_reply_code")),
    )
    op.create_index(op.f("ix_pages_state_next_step_at"), "pages", ["state", "next_step_at"])
    op.create_index(op.f("ix_pages_ticket_id"), "pages", ["ticket_id"])
    op.create_index(
        "uq_pages_ticket_id_active",
        "pages",
        ["ticket_id"],
        unique=True,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_table(
        "page_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("page_id", ID, nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("person", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("retry", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("outbox_id", ID, nullable=True),
        sa.Column("provider_sid", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.CheckConstraint("channel IN ('sms', 'call', 'email')", name=op.f("ck_page_attempts_channel")),
        sa.CheckConstraint(
            "status IN ('queued', 'sent', 'delivered', 'ringing', 'answered', 'completed', "
            "'acknowledged', 'failed', 'cancelled')",
            name=op.f("ck_page_attempts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["page_id"], ["pages.id"], name=op.f("fk_page_attempts_page_id_pages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_page_attempts_outbox_id_outbox"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_page_attempts")),
        sa.UniqueConstraint(
            "page_id",
            "round",
            "step",
            "person",
            "channel",
            "retry",
            name=op.f("uq_page_attempts_page_id_round_step_person_channel_retry"),
        ),
    )
    op.create_index(op.f("ix_page_attempts_provider_sid"), "page_attempts", ["provider_sid"])
    op.create_table(
        "webhook_receipts",
        sa.Column("id", ID, nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_receipts")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_webhook_receipts_dedupe_key")),
    )


def downgrade() -> None:
    op.drop_table("webhook_receipts")
    op.drop_index(op.f("ix_page_attempts_provider_sid"), table_name="page_attempts")
    op.drop_table("page_attempts")
    op.drop_index("uq_pages_ticket_id_active", table_name="pages")
    op.drop_index(op.f("ix_pages_ticket_id"), table_name="pages")
    op.drop_index(op.f("ix_pages_state_next_step_at"), table_name="pages")
    op.drop_table("pages")
    op.drop_index(op.f("ix_oncall_overrides_schedule_starts_at"), table_name="oncall_overrides")
    op.drop_table("oncall_overrides")
    op.drop_index(op.f("ix_tickets_priority_status"), table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("ck_tickets_suggested_priority"), type_="check")
        for name in TICKET_COLUMNS:
            batch.drop_column(name)
