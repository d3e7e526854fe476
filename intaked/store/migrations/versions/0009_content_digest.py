"""Deduplication by Message-ID and content: each inbound message's content fingerprint
(intaked/parsing/fingerprint.py), so a different mail that reuses a stored Message-ID is stored as
its own message instead of being taken for a copy. Rows stored before this revision keep NULL:
their fingerprint is computed from the raw bytes in the ledger when needed.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("content_digest", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("content_digest")
