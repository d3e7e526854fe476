"""Spam quarantine: ticket status ``spam`` for mail our MTA flagged as spam (stored, not
acknowledged, no deadlines), why it was flagged, and when a person released it.

Revision ID: 0010
Revises: 0008 (the lead rechains it after 0009 at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
WITH_SPAM = "status IN ('new', 'open', 'pending', 'resolved', 'closed', 'spam')"
WITHOUT_SPAM = "status IN ('new', 'open', 'pending', 'resolved', 'closed')"


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("spam_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("released_at", TS, nullable=True))
        batch.drop_constraint(op.f("ck_tickets_status"), type_="check")
        batch.create_check_constraint(op.f("ck_tickets_status"), WITH_SPAM)


def downgrade() -> None:
    # Tickets still in quarantine become ``new`` again: nothing is lost, they wait for triage.
    op.execute("UPDATE tickets SET status = 'new', sla_status = NULL WHERE status = 'spam'")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("ck_tickets_status"), type_="check")
        batch.create_check_constraint(op.f("ck_tickets_status"), WITHOUT_SPAM)
        batch.drop_column("released_at")
        batch.drop_column("spam_reason")
