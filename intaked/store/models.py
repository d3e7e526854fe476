"""The ticket store's tables: a public contract, documented in docs/schema.md.

Other tools (an agent UI, reports) read and write these tables, so they change only through
Alembic migrations (``intaked/store/migrations``), never by editing this file alone.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from intaked.store.types import UTCDateTime, utcnow

TICKET_STATUSES: Final = ("new", "open", "pending", "resolved", "closed", "spam")
PRIORITIES: Final = ("P1", "P2", "P3", "P4")
OVERRIDE_KINDS: Final = ("holiday", "workday")
ITEM_STATES: Final = ("received", "processing", "done", "duplicate", "quarantined")
CATEGORIES: Final = ("incident", "service_request", "security_incident")
PAGE_STATES: Final = ("active", "acknowledged", "exhausted", "cancelled")
PAGE_CHANNELS: Final = ("sms", "call", "email")
WORKER_STATES: Final = ("alive", "gone")
CALL_OUTCOMES: Final = ("in_progress", "voicemail", "missed", "answered_by_desk")
ATTEMPT_STATUSES: Final = (
    "queued",  # written to the outbox, not yet accepted by the provider
    "sent",  # accepted by the provider (an SMS Sid or a Call Sid exists)
    "delivered",  # SMS delivered to the handset
    "ringing",
    "answered",  # a call was picked up (a person or a machine)
    "completed",  # a call ended without a keypress, or an SMS had no reply: not an acknowledgement
    "acknowledged",  # this attempt's person acknowledged through it
    "failed",  # permanent: invalid number, undelivered, busy/no-answer after retries, refused
    "cancelled",  # stopped before it reached anyone (the page was acknowledged)
)

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
IdType = BigInteger().with_variant(Integer(), "sqlite")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Ticket(Base):
    """One incident or request, whatever channel it came by."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("status", TICKET_STATUSES), name="status"),
        CheckConstraint(f"priority IS NULL OR {_in('priority', PRIORITIES)}", name="priority"),
        CheckConstraint(
            f"suggested_priority IS NULL OR {_in('suggested_priority', PRIORITIES)}",
            name="suggested_priority",
        ),
        Index(None, "status"),
        Index(None, "created_at"),
        Index(None, "sla_next_check_at"),
        Index(None, "sla_status"),
        Index(None, "status", "auto_close_at"),
        Index(None, "priority", "status"),
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
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # Working time (0004): who works on it, and the promises made (docs/schema.md).
    team: Mapped[str | None] = mapped_column(String(64))
    calendar: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    triaged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    triaged_by: Mapped[str | None] = mapped_column(String(128))
    triage_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    response_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution_due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_response_by: Mapped[str | None] = mapped_column(String(128))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    auto_close_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    triage_breached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    response_warned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    response_breached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution_warned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    resolution_breached_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sla_priority: Mapped[str | None] = mapped_column(String(2))
    sla_status: Mapped[str | None] = mapped_column(String(16))
    sla_occurred_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sla_paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sla_paused_seconds: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    sla_next_check_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Spam quarantine (0010): why the MTA's verdict made it ``spam``, and when a person released it.
    spam_reason: Mapped[str | None] = mapped_column(Text)
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
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

    messages: Mapped[list[Message]] = relationship(back_populates="ticket", order_by="Message.id")
    events: Mapped[list[TicketEvent]] = relationship(order_by="TicketEvent.id")


class InboundItem(Base):
    """The intake ledger: one row per raw item a channel captured, before and after parsing.

    ``state`` goes received → processing → done | duplicate | quarantined. The raw bytes are kept
    (zlib-compressed) so every message can be audited and parsed again.
    """

    __tablename__ = "inbound_items"
    __table_args__ = (
        CheckConstraint(_in("state", ITEM_STATES), name="state"),
        Index(None, "state", "next_attempt_at"),
        Index(None, "raw_sha256"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    envelope_from: Mapped[str | None] = mapped_column(Text)
    envelope_to: Mapped[str | None] = mapped_column(Text)
    peer: Mapped[str | None] = mapped_column(String(128))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    raw_encoding: Mapped[str] = mapped_column(String(16), default="zlib")
    raw_size: Mapped[int] = mapped_column(Integer)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    source_ref: Mapped[str | None] = mapped_column(String(512), unique=True)


class Message(Base):
    """One message on a ticket, inbound or outbound."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(_in("direction", ("in", "out")), name="direction"),
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
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    dedupe_key: Mapped[str | None] = mapped_column(Text, unique=True)
    content_digest: Mapped[str | None] = mapped_column(String(64))
    inbound_item_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_items.id", ondelete="SET NULL"))
    parse_problems: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

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
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)


class ImapMailbox(Base):
    """Where each configured IMAP mailbox stands: the last committed UID under its UIDVALIDITY."""

    __tablename__ = "imap_mailboxes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    backlog: Mapped[int | None] = mapped_column(Integer)
    last_poll_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


OUTBOX_STATES: Final = ("pending", "sending", "sent", "failed", "cancelled")


class OutboxEntry(Base):
    """One outbound side effect (a mail now; SMS and calls later), written in the same transaction
    as the change that caused it and sent by a dispatcher afterwards."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("state", OUTBOX_STATES), name="state"),
        Index(None, "state", "next_attempt_at"),
        Index(None, "purpose", "recipient", "created_at"),
        Index(None, "ticket_id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    recipient: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    payload: Mapped[str] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CalendarOverride(Base):
    """A day a calendar treats differently from its rules, set at run time (0004)."""

    __tablename__ = "calendar_overrides"
    __table_args__ = (
        CheckConstraint(_in("kind", OVERRIDE_KINDS), name="kind"),
        UniqueConstraint("calendar", "day"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    calendar: Mapped[str] = mapped_column(String(64))
    day: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class OncallOverride(Base):
    """A stretch of time in which someone else holds an on-call role (0005)."""

    __tablename__ = "oncall_overrides"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="span"),
        Index(None, "schedule", "starts_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    schedule: Mapped[str] = mapped_column(String(64))
    person: Mapped[str] = mapped_column(String(128))
    replaces: Mapped[str | None] = mapped_column(String(128))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class Page(Base):
    """One ticket's paging of the Quick Response Center: a persisted escalation state machine (0005)."""

    __tablename__ = "pages"
    __table_args__ = (
        CheckConstraint(_in("state", PAGE_STATES), name="state"),
        CheckConstraint(_in("priority", PRIORITIES), name="priority"),
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
    next_step_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reply_code: Mapped[str] = mapped_column(String(8), unique=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    ack_channel: Mapped[str | None] = mapped_column(String(16))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    provider_down_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    fallback_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PageAttempt(Base):
    """One SMS, call or mail sent to one person for one step of a page (0005)."""

    __tablename__ = "page_attempts"
    __table_args__ = (
        CheckConstraint(_in("channel", PAGE_CHANNELS), name="channel"),
        CheckConstraint(_in("status", ATTEMPT_STATUSES), name="status"),
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
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class WebhookReceipt(Base):
    """A provider webhook already acted on, keyed so a replay or a retry changes nothing (0005)."""

    __tablename__ = "webhook_receipts"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    sid: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Call(Base):
    """One call to the hotline, and the ticket it filed or joined (0006)."""

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(_in("outcome", CALL_OUTCOMES), name="outcome"),
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
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
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
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class HotlineCheckpoint(Base):
    """How far reconciliation with the provider's call and recording lists has got (0006)."""

    __tablename__ = "hotline_checkpoints"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    covered_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Worker(Base):
    """A process that claims work (ledger items, outbox rows), with its heartbeat (0008).

    Claims carry the worker's id (``claimed_by`` is ``<worker id>/<claim>``): a claim whose worker
    is ``gone``, or silent for longer than its lease, is taken up again by a live worker.
    """

    __tablename__ = "workers"
    __table_args__ = (
        CheckConstraint(_in("state", WORKER_STATES), name="state"),
        Index(None, "node", "state"),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    pid: Mapped[int] = mapped_column(Integer)
    process_started: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="alive")
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_seconds: Mapped[float] = mapped_column(Float)
    gone_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    gone_reason: Mapped[str | None] = mapped_column(Text)


class TicketCounter(Base):
    """The last ticket number handed out per prefix and month (e.g. ``IT-202611`` → 42)."""

    __tablename__ = "ticket_counters"

    period: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer)


# The tables as Core ``Table`` objects, for the set-based statements of the hot paths.
ticket_table = cast(Table, Ticket.__table__)
inbound_item_table = cast(Table, InboundItem.__table__)
message_table = cast(Table, Message.__table__)
attachment_table = cast(Table, Attachment.__table__)
blob_table = cast(Table, Blob.__table__)
ticket_event_table = cast(Table, TicketEvent.__table__)
ticket_counter_table = cast(Table, TicketCounter.__table__)
imap_mailbox_table = cast(Table, ImapMailbox.__table__)
outbox_table = cast(Table, OutboxEntry.__table__)
calendar_override_table = cast(Table, CalendarOverride.__table__)
oncall_override_table = cast(Table, OncallOverride.__table__)
page_table = cast(Table, Page.__table__)
page_attempt_table = cast(Table, PageAttempt.__table__)
webhook_receipt_table = cast(Table, WebhookReceipt.__table__)
call_table = cast(Table, Call.__table__)
hotline_checkpoint_table = cast(Table, HotlineCheckpoint.__table__)
worker_table = cast(Table, Worker.__table__)
