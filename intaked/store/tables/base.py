"""What every table shares: the declarative base with its naming convention and its column type
for datetimes (:class:`~intaked.store.types.UTCDateTime`), the id type, and the allowed values of
the enumerated columns (checked by CHECK constraints, :func:`one_of`)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Final

from sqlalchemy import BigInteger, CheckConstraint, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase

from intaked.store.types import UTCDateTime

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


def in_list(column: str, values: tuple[str, ...]) -> str:
    """A CHECK constraint's text: ``column`` holds one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def one_of(column: str, values: tuple[str, ...], *, nullable: bool = False) -> CheckConstraint:
    """The CHECK constraint (named after ``column``) that ``column`` holds one of ``values`` (or
    NULL, when ``nullable``)."""
    check = in_list(column, values)
    return CheckConstraint(f"{column} IS NULL OR {check}" if nullable else check, name=column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every ``Mapped[dt.datetime]`` column is stored as UTC (intaked/store/types.py).
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime}
