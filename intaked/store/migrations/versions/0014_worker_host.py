"""The machine each worker runs on: ``workers.host``. A node's name (``daemon.node_name``)
defaults to the host name plus the front's process id, so the host is kept on its own: a process
judges the workers of its own machine dead when their process no longer exists, whatever node
they belong to.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("host")
