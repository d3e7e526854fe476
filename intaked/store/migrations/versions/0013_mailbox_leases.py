"""Mailbox leases: each IMAP mailbox is pulled by one node at a time. ``imap_mailboxes`` gains
the lease's holder, when it runs out, and a fencing token that grows at every take-over.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("imap_mailboxes") as batch:
        batch.add_column(sa.Column("lease_holder", sa.String(128), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_fence", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("imap_mailboxes") as batch:
        batch.drop_column("lease_fence")
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_holder")
