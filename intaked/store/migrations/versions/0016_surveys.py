"""Satisfaction surveys: table ``surveys``, one row per survey sent to the requester of a closed
ticket (by mail or SMS), with the survey mail's Message-ID and the SMS reply code that answers
are recognised by, and when it was sent, clarified, answered and until when answers count.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "surveys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("code", sa.String(8), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("clarified_at", TS, nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("invalid_answers", sa.Integer(), nullable=False, server_default="0"),
        sa.CheckConstraint("channel IN ('mail', 'sms')", name=op.f("ck_surveys_channel")),
        sa.CheckConstraint("state IN ('sent', 'clarified', 'answered')", name=op.f("ck_surveys_state")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_surveys_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_surveys")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_surveys_ticket_id")),
    )
    op.create_index(op.f("ix_surveys_message_id"), "surveys", ["message_id"])
    op.create_index(op.f("ix_surveys_address_code"), "surveys", ["address", "code"])


def downgrade() -> None:
    op.drop_index(op.f("ix_surveys_address_code"), table_name="surveys")
    op.drop_index(op.f("ix_surveys_message_id"), table_name="surveys")
    op.drop_table("surveys")
