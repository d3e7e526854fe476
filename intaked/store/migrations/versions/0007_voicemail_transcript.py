"""Hotline: Twilio's transcription of a voicemail kept in a column of its own, beside the caller's
spoken description, so that rewriting a call's message never loses it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("voicemail_transcript", sa.Text(), nullable=True))
    # Calls transcribed before this revision: their transcript came from Twilio.
    op.execute("UPDATE calls SET voicemail_transcript = transcript WHERE transcript_source = 'twilio'")


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("voicemail_transcript")
