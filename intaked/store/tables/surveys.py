"""Satisfaction surveys (0016): one row per survey sent to a ticket's requester when the ticket
closed, with what intake and the SMS webhook need to recognise its answers (the survey mail's
Message-ID, the SMS reply code) and how far it got (docs/schema.md, ``surveys``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import Base, IdType, one_of

SURVEY_CHANNELS = ("mail", "sms")
SURVEY_STATES = ("sent", "clarified", "answered")


class Survey(Base):
    """The survey of one closed ticket (at most one per ticket)."""

    __tablename__ = "surveys"
    __table_args__ = (
        one_of("channel", SURVEY_CHANNELS),
        one_of("state", SURVEY_STATES),
        Index(None, "message_id"),
        Index(None, "address", "code"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(320))
    code: Mapped[str | None] = mapped_column(String(8))
    message_id: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="sent")
    sent_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    clarified_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]
    invalid_answers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
