"""The outbox of side effects waiting to be sent, and the worker processes that claim work."""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import WORKER_STATES, Base, IdType, one_of
from intaked.store.types import utcnow

OUTBOX_STATES: Final = ("pending", "sending", "sent", "failed", "cancelled")


class OutboxEntry(Base):
    """One outbound side effect (a mail now; SMS and calls later), written in the same transaction
    as the change that caused it and sent by a dispatcher afterwards."""

    __tablename__ = "outbox"
    __table_args__ = (
        one_of("state", OUTBOX_STATES),
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
    next_attempt_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime | None]
    payload: Mapped[str] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]


class Worker(Base):
    """A process that claims work (ledger items, outbox rows), with its heartbeat (0008).

    Claims carry the worker's id (``claimed_by`` is ``<worker id>/<claim>``): a claim whose worker
    is ``gone``, or silent for longer than its lease, is taken up again by a live worker.
    """

    __tablename__ = "workers"
    __table_args__ = (
        one_of("state", WORKER_STATES),
        Index(None, "node", "state"),
    )

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))  # 0014
    role: Mapped[str] = mapped_column(String(32))
    pid: Mapped[int] = mapped_column(Integer)
    process_started: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="alive")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_seconds: Mapped[float] = mapped_column(Float)
    gone_at: Mapped[dt.datetime | None]
    gone_reason: Mapped[str | None] = mapped_column(Text)
