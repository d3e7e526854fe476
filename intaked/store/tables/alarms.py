"""intaked's own alarms (0011): one row per condition the front watches, holding its current or
last incident, so that a restart or a second node does not alarm again for the same one."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import Base


class Alarm(Base):
    """A watched condition's incident: open while ``resolved_at`` is NULL; ``notified_at`` is set
    by whichever front sent the alarm (a conditional update: one of them)."""

    __tablename__ = "alarms"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    opened_at: Mapped[dt.datetime]
    notified_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
