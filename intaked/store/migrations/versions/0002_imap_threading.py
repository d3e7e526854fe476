"""IMAP and threading: inbound_items.source_ref, tickets.parent_id, imap_mailboxes.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_items") as batch:
        batch.add_column(sa.Column("source_ref", sa.String(length=512), nullable=True))
        batch.create_unique_constraint(op.f("uq_inbound_items_source_ref"), ["source_ref"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("parent_id", ID, nullable=True))
        batch.create_foreign_key(
            op.f("fk_tickets_parent_id_tickets"), "tickets", ["parent_id"], ["id"], ondelete="SET NULL"
        )
    op.create_table(
        "imap_mailboxes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("backlog", sa.Integer(), nullable=True),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_imap_mailboxes")),
    )


def downgrade() -> None:
    op.drop_table("imap_mailboxes")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("fk_tickets_parent_id_tickets"), type_="foreignkey")
        batch.drop_column("parent_id")
    with op.batch_alter_table("inbound_items") as batch:
        batch.drop_constraint(op.f("uq_inbound_items_source_ref"), type_="unique")
        batch.drop_column("source_ref")
