"""Security incidents (issue 19, docs/security-incidents.md): the level (1-4, the regulation's
numbering), when the organisation became aware, the notification and damage-control clocks with
their warnings and breaches, when the authority was notified, the level and awareness time the
clocks were computed from, the highest level whose internal reporting chain ran; table
``security_forms``, the incident report form's fields (seed 004, 附件三), one row per ticket.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
LEVEL = "security_level IS NULL OR security_level BETWEEN 1 AND 4"
TIMES = (
    "security_aware_at",
    "security_notify_due_at",
    "security_notify_warned_at",
    "security_notify_breached_at",
    "security_notified_at",
    "security_contain_due_at",
    "security_contain_warned_at",
    "security_contain_breached_at",
    "security_next_check_at",
    "security_seen_aware_at",
)
TEXTS = (
    "ip_address",
    "url",
    "brand_model",
    "os_version",
    "protection",
    "category_other",
    "damage_other",
    "description",
    "impact",
    "response",
    "support",
    "solution",
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("security_level", sa.SmallInteger(), nullable=True))
        for column in TIMES:
            batch.add_column(sa.Column(column, TS, nullable=True))
        batch.add_column(sa.Column("security_seen_level", sa.SmallInteger(), nullable=True))
        batch.add_column(sa.Column("security_chain_level", sa.SmallInteger(), nullable=True))
        batch.create_check_constraint(op.f("ck_tickets_security_level"), LEVEL)
        batch.create_index(op.f("ix_tickets_security_next_check_at"), ["security_next_check_at"])
    op.create_table(
        "security_forms",
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", TS, nullable=True),
        sa.Column("incident_category", sa.String(16), nullable=True),
        sa.Column("damage", sa.String(16), nullable=True),
        *(sa.Column(column, sa.String(100), nullable=True) for column in TEXTS),
        sa.Column("repaired_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=True),
        sa.CheckConstraint(
            "incident_category IS NULL OR incident_category IN ('intrusion', 'malware', 'dos', 'other')",
            name=op.f("ck_security_forms_incident_category"),
        ),
        sa.CheckConstraint(
            "damage IS NULL OR damage IN ('crash', 'database', 'defacement', 'other')",
            name=op.f("ck_security_forms_damage"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_security_forms_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_security_forms")),
    )


def downgrade() -> None:
    op.drop_table("security_forms")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index(op.f("ix_tickets_security_next_check_at"))
        batch.drop_constraint(op.f("ck_tickets_security_level"), type_="check")
        for column in ("security_chain_level", "security_seen_level", *reversed(TIMES), "security_level"):
            batch.drop_column(column)
