"""The paging of the Quick Response Center: one page per ticket and its attempts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import (
    ATTEMPT_STATUSES,
    PAGE_CHANNELS,
    PAGE_STATES,
    PRIORITIES,
    Base,
    IdType,
    one_of,
)
from intaked.store.types import utcnow


class Page(Base):
    """One ticket's paging of the Quick Response Center: a persisted escalation state machine (0005)."""

    __tablename__ = "pages"
    __table_args__ = (
        one_of("state", PAGE_STATES),
        one_of("priority", PRIORITIES),
        Index(None, "state", "next_step_at"),
        Index(None, "ticket_id"),
        # One active page per ticket; a ticket paged again after its page was cancelled or
        # given up gets a new page.
        Index(
            "uq_pages_ticket_id_active",
            "ticket_id",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    priority: Mapped[str] = mapped_column(String(2))
    state: Mapped[str] = mapped_column(String(16), default="active")
    unconfirmed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    reason: Mapped[str] = mapped_column(Text, default="")
    policy: Mapped[str] = mapped_column(Text)
    step: Mapped[int] = mapped_column(Integer, default=0)
    round: Mapped[int] = mapped_column(Integer, default=0)
    fence: Mapped[int] = mapped_column(Integer, default=0)
    next_step_at: Mapped[dt.datetime | None]
    reply_code: Mapped[str] = mapped_column(String(8), unique=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    ack_channel: Mapped[str | None] = mapped_column(String(16))
    ended_at: Mapped[dt.datetime | None]
    provider_down_since: Mapped[dt.datetime | None]
    fallback_sent_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PageAttempt(Base):
    """One SMS, call or mail sent to one person for one step of a page (0005)."""

    __tablename__ = "page_attempts"
    __table_args__ = (
        one_of("channel", PAGE_CHANNELS),
        one_of("status", ATTEMPT_STATUSES),
        UniqueConstraint("page_id", "round", "step", "person", "channel", "retry"),
        Index(None, "provider_sid"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    person: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(8))
    retry: Mapped[int] = mapped_column(Integer, default=0)
    address: Mapped[str] = mapped_column(String(320))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error_code: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]
    delivered_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    acknowledged_at: Mapped[dt.datetime | None]
