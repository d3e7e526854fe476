"""Run-time changes to the calendars (holidays, extra workdays) and to the on-call rotas."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Date, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import OVERRIDE_KINDS, Base, IdType, one_of
from intaked.store.types import utcnow


class CalendarOverride(Base):
    """A day a calendar treats differently from its rules, set at run time (0004)."""

    __tablename__ = "calendar_overrides"
    __table_args__ = (
        one_of("kind", OVERRIDE_KINDS),
        UniqueConstraint("calendar", "day"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    calendar: Mapped[str] = mapped_column(String(64))
    day: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
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
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
