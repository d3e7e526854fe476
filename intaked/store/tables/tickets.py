"""The tickets and what hangs off them: messages, attachments and their blobs, the audit trail of
events, and the per-month number counters."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intaked.store.tables.base import PRIORITIES, TICKET_STATUSES, Base, IdType, one_of
from intaked.store.types import utcnow


class Ticket(Base):
    """One incident or request, whatever channel it came by."""

    __tablename__ = "tickets"
    __table_args__ = (
        one_of("status", TICKET_STATUSES),
        one_of("priority", PRIORITIES, nullable=True),
        one_of("suggested_priority", PRIORITIES, nullable=True),
        Index(None, "status"),
        Index(None, "created_at"),
        Index(None, "sla_next_check_at"),
        Index(None, "sla_status"),
        Index(None, "status", "auto_close_at"),
        Index(None, "priority", "status"),
        Index(None, "resolved_at"),
        Index(None, "closed_at"),
        Index(None, "major_incident_id"),
        CheckConstraint(
            "satisfaction_score IS NULL OR satisfaction_score BETWEEN 1 AND 5", name="satisfaction_score"
        ),
        CheckConstraint("security_level IS NULL OR security_level BETWEEN 1 AND 4", name="security_level"),
        Index(None, "security_next_check_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[str | None] = mapped_column(String(2))
    channel: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(Text, default="")
    requester_name: Mapped[str | None] = mapped_column(Text)
    requester_email: Mapped[str | None] = mapped_column(String(320))
    requester_phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # Working time (0004): who works on it, and the promises made (docs/schema.md).
    team: Mapped[str | None] = mapped_column(String(64))
    calendar: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime | None]
    triaged_at: Mapped[dt.datetime | None]
    triaged_by: Mapped[str | None] = mapped_column(String(128))
    triage_due_at: Mapped[dt.datetime | None]
    response_due_at: Mapped[dt.datetime | None]
    resolution_due_at: Mapped[dt.datetime | None]
    first_response_at: Mapped[dt.datetime | None]
    first_response_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[dt.datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[dt.datetime | None]
    auto_close_at: Mapped[dt.datetime | None]
    triage_breached_at: Mapped[dt.datetime | None]
    response_warned_at: Mapped[dt.datetime | None]
    response_breached_at: Mapped[dt.datetime | None]
    resolution_warned_at: Mapped[dt.datetime | None]
    resolution_breached_at: Mapped[dt.datetime | None]
    sla_priority: Mapped[str | None] = mapped_column(String(2))
    sla_status: Mapped[str | None] = mapped_column(String(16))
    sla_occurred_at: Mapped[dt.datetime | None]
    sla_paused_at: Mapped[dt.datetime | None]
    sla_paused_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    sla_next_check_at: Mapped[dt.datetime | None]
    # Spam quarantine (0010): why the MTA's verdict made it ``spam``, and when a person released it.
    spam_reason: Mapped[str | None] = mapped_column(Text)
    released_at: Mapped[dt.datetime | None]
    sla_snapshot: Mapped[str | None] = mapped_column(Text)
    # Routing and paging (0005): what the rules suggested, and who took command.
    category: Mapped[str | None] = mapped_column(String(32))
    suggested_priority: Mapped[str | None] = mapped_column(String(2))
    suggested_by: Mapped[str | None] = mapped_column(Text)
    suggestion_trusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    requester_department: Mapped[str | None] = mapped_column(Text)
    requester_site: Mapped[str | None] = mapped_column(Text)
    incident_commander: Mapped[str | None] = mapped_column(String(128))
    # Hotline (0006): someone must call the requester back (a missed call, a voicemail).
    callback_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Service levels (0015, docs/service-levels.md): the standard completion time, the first and
    # the current commitment, extensions and escalations, and the requester's satisfaction.
    standard_due_at: Mapped[dt.datetime | None]
    first_commitment_at: Mapped[dt.datetime | None]
    commitment_at: Mapped[dt.datetime | None]
    sla_commitment_at: Mapped[dt.datetime | None]
    extension_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalation_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    satisfaction_score: Mapped[int | None] = mapped_column(SmallInteger)
    satisfaction_comment: Mapped[str | None] = mapped_column(Text)
    satisfaction_at: Mapped[dt.datetime | None]
    # Security incidents (0017, docs/security-incidents.md): level 1-4 (4 the most severe), the
    # notification and damage-control clocks from security_aware_at, the authority notified.
    security_level: Mapped[int | None] = mapped_column(SmallInteger)
    security_aware_at: Mapped[dt.datetime | None]
    security_notify_due_at: Mapped[dt.datetime | None]
    security_notify_warned_at: Mapped[dt.datetime | None]
    security_notify_breached_at: Mapped[dt.datetime | None]
    security_notified_at: Mapped[dt.datetime | None]
    security_contain_due_at: Mapped[dt.datetime | None]
    security_contain_warned_at: Mapped[dt.datetime | None]
    security_contain_breached_at: Mapped[dt.datetime | None]
    security_next_check_at: Mapped[dt.datetime | None]
    security_seen_aware_at: Mapped[dt.datetime | None]
    security_seen_level: Mapped[int | None] = mapped_column(SmallInteger)
    security_chain_level: Mapped[int | None] = mapped_column(SmallInteger)
    # Major incidents (0018, docs/paging.md): the paged ticket this report of the same outage is
    # linked to (not ``parent_id``, which means follow-ups and stranger tags).
    major_incident_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))

    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id")
    events: Mapped[list[TicketEvent]] = relationship(order_by="TicketEvent.id")


class Message(Base):
    """One message on a ticket, inbound or outbound."""

    __tablename__ = "messages"
    __table_args__ = (
        one_of("direction", ("in", "out")),
        Index(None, "ticket_id"),
        Index(None, "header_message_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    header_message_id: Mapped[str | None] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    header_references: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None]
    dedupe_key: Mapped[str | None] = mapped_column(Text, unique=True)
    content_digest: Mapped[str | None] = mapped_column(String(64))
    inbound_item_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_items.id", ondelete="SET NULL"))
    parse_problems: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")


class Blob(Base):
    """Content-addressed bytes (attachments), stored once per SHA-256."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    encoding: Mapped[str] = mapped_column(String(16), default="zlib")
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Attachment(Base):
    """A file attached to a message; the bytes live in ``blobs`` under ``sha256``."""

    __tablename__ = "attachments"
    __table_args__ = (Index(None, "message_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage: Mapped[str] = mapped_column(String(16), default="blobs")
    content_id: Mapped[str | None] = mapped_column(Text)
    inline: Mapped[bool] = mapped_column(default=False)


class TicketEvent(Base):
    """Append-only audit trail: every change to a ticket, who or what made it, before and after."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index(None, "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)


class TicketCounter(Base):
    """The last ticket number handed out per prefix and month (e.g. ``IT-202611`` → 42)."""

    __tablename__ = "ticket_counters"

    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer)
