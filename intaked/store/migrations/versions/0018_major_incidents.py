"""Major incidents (issue 19): ``tickets.major_incident_id``, the major incident (a paged P1/P2
ticket) a report of the same outage is linked to, with an index to list an incident's reports.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("major_incident_id", ID, nullable=True))
        batch.create_foreign_key(
            op.f("fk_tickets_major_incident_id_tickets"),
            "tickets",
            ["major_incident_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_tickets_major_incident_id"), ["major_incident_id"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index(op.f("ix_tickets_major_incident_id"))
        batch.drop_constraint(op.f("fk_tickets_major_incident_id_tickets"), type_="foreignkey")
        batch.drop_column("major_incident_id")
