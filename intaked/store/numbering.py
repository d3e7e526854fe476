"""Human-readable ticket numbers: ``PREFIX-YYYYMM-NNNNN``, one sequence per prefix and month.

The counter row is bumped with an atomic upsert inside the caller's transaction, so concurrent
writers (threads, daemons on one PostgreSQL) never hand out the same number: PostgreSQL holds
the row lock until commit and SQLite has a single writer.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from intaked.store.models import TicketCounter

_counters = TicketCounter.__table__


def ticket_period(prefix: str, when: dt.datetime, timezone: str) -> str:
    """The numbering period a ticket created at ``when`` falls in, e.g. ``IT-202611``."""
    local = when.astimezone(ZoneInfo(timezone))
    return f"{prefix}-{local:%Y%m}"


def next_ticket_number(conn: Connection, prefix: str, when: dt.datetime, timezone: str) -> str:
    """Allocate the next number of the period (inside the caller's transaction)."""
    period = ticket_period(prefix, when, timezone)
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(_counters).values(period=period, last_value=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_counters.c.period],
        set_={"last_value": _counters.c.last_value + 1},
    ).returning(_counters.c.last_value)
    value = conn.execute(stmt).scalar_one()
    return f"{period}-{value:05d}"
