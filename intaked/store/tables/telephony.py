"""The telephony provider's side: webhooks acted on, hotline calls, and reconciliation checkpoints."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import CALL_OUTCOMES, Base, IdType, one_of
from intaked.store.types import utcnow


class WebhookReceipt(Base):
    """A provider webhook already acted on, keyed so a replay or a retry changes nothing (0005)."""

    __tablename__ = "webhook_receipts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Call(Base):
    """One call to the hotline, and the ticket it filed or joined (0006)."""

    __tablename__ = "calls"
    __table_args__ = (
        one_of("outcome", CALL_OUTCOMES),
        Index(None, "from_number", "started_at"),
        Index(None, "started_at"),
        Index(None, "ticket_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    from_number: Mapped[str] = mapped_column(String(32))
    to_number: Mapped[str] = mapped_column(String(32))
    caller_name: Mapped[str | None] = mapped_column(Text)
    menu_choice: Mapped[str | None] = mapped_column(String(8))
    twilio_status: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16), default="in_progress")
    started_at: Mapped[dt.datetime]
    answered_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    recording_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    recording_seconds: Mapped[int | None] = mapped_column(Integer)
    recording_error: Mapped[str | None] = mapped_column(String(16))
    attachment_id: Mapped[int | None] = mapped_column(ForeignKey("attachments.id", ondelete="SET NULL"))
    transcript: Mapped[str | None] = mapped_column(Text)
    transcript_confidence: Mapped[float | None] = mapped_column(Float)
    transcript_source: Mapped[str | None] = mapped_column(String(16))
    voicemail_transcript: Mapped[str | None] = mapped_column(Text)  # Twilio's, of the voicemail (0007)
    source: Mapped[str] = mapped_column(String(16), default="webhook")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HotlineCheckpoint(Base):
    """How far reconciliation with the provider's call and recording lists has got (0006)."""

    __tablename__ = "hotline_checkpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    covered_until: Mapped[dt.datetime | None]
    last_run_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
