"""What the daemons sharing one database share beyond claims (0012): the slot each periodic job
ran in, so that a job runs once per interval across the cluster, and the rate budgets they spend
together (Twilio's calls per second)."""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from intaked.store.tables.base import Base, one_of

JOB_OUTCOMES: Final = ("done", "failed")


class JobRun(Base):
    """One periodic job's pass for one slot (``slot_start``: the interval it fell in, epoch based,
    UTC). The node whose insert landed ran it; ``finished_at`` NULL: still running, or its process
    died mid-pass (the slot is not run again)."""

    __tablename__ = "job_runs"
    __table_args__ = (one_of("outcome", JOB_OUTCOMES, nullable=True),)

    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    slot_start: Mapped[dt.datetime] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    worker: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    handled: Mapped[int | None] = mapped_column(Integer)


class RateBucket(Base):
    """A token bucket every node takes from (intaked/store/ratebuckets.py): ``tokens`` as of
    ``updated_at``; the rate and capacity are the taker's (its settings)."""

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime]
