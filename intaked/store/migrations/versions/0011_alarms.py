"""intaked's own alarms: one row per watched condition with its current or last incident (opened,
notified, resolved), so that an incident is told once, whatever restarts or other nodes do.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    times = [
        sa.Column(name, sa.DateTime(timezone=True), nullable=name != "opened_at")
        for name in ("opened_at", "notified_at", "resolved_at")
    ]
    op.create_table(
        "alarms",
        sa.Column("key", sa.String(128), nullable=False),
        *times,
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_alarms")),
    )


def downgrade() -> None:
    op.drop_table("alarms")
