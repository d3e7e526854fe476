"""The intake ledger (every raw item a channel captured) and where each IMAP mailbox stands."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import ITEM_STATES, Base, IdType, one_of
from intaked.store.types import utcnow


class InboundItem(Base):
    """The intake ledger: one row per raw item a channel captured, before and after parsing.

    ``state`` goes received → processing → done | duplicate | quarantined. The raw bytes are kept
    (zlib-compressed) so every message can be audited and parsed again.
    """

    __tablename__ = "inbound_items"
    __table_args__ = (
        one_of("state", ITEM_STATES),
        Index(None, "state", "next_attempt_at"),
        Index(None, "raw_sha256"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    envelope_from: Mapped[str | None] = mapped_column(Text)
    envelope_to: Mapped[str | None] = mapped_column(Text)
    peer: Mapped[str | None] = mapped_column(String(128))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    raw_encoding: Mapped[str] = mapped_column(String(16), default="zlib")
    raw_size: Mapped[int] = mapped_column(Integer)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    processed_at: Mapped[dt.datetime | None]
    source_ref: Mapped[str | None] = mapped_column(String(512), unique=True)


class ImapMailbox(Base):
    """Where each configured IMAP mailbox stands: the last committed UID under its UIDVALIDITY; and
    which node pulls it, under a lease with a fencing token (0013, intaked/store/leases.py)."""

    __tablename__ = "imap_mailboxes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    backlog: Mapped[int | None] = mapped_column(Integer)
    last_poll_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    lease_holder: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None]
    lease_fence: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
