"""Human-readable ticket numbers: ``PREFIX-YYYYMM-NNNNN``, one sequence per prefix and month.

The counter row is bumped with an atomic upsert inside the caller's transaction, so concurrent
writers (threads, daemons on one PostgreSQL) never hand out the same number: PostgreSQL holds
the row lock until commit and SQLite has a single writer.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from intaked.store.dialect import insert_or_merge
from intaked.store.models import ticket_counter_table

_counters = ticket_counter_table


def ticket_period(prefix: str, when: dt.datetime, timezone: str) -> str:
    """The numbering period a ticket created at ``when`` falls in, e.g. ``IT-202611``."""
    local = when.astimezone(ZoneInfo(timezone))
    return f"{prefix}-{local:%Y%m}"


def _reserve(conn: Connection, period: str, count: int) -> int:
    """Reserve ``count`` consecutive values of ``period``; returns the last one."""
    stmt = (
        insert_or_merge(conn, _counters)
        .values(period=period, last_value=count)
        .on_conflict_do_update(
            index_elements=[_counters.c.period], set_={"last_value": _counters.c.last_value + count}
        )
        .returning(_counters.c.last_value)
    )
    return int(conn.execute(stmt).scalar_one())


def allocate_ticket_numbers(conn: Connection, periods: Sequence[str]) -> list[str]:
    """One new number for each entry of ``periods``, in order (one upsert per distinct period)."""
    counts = Counter(periods)
    next_value = {period: _reserve(conn, period, count) - count + 1 for period, count in counts.items()}
    numbers = []
    for period in periods:
        numbers.append(f"{period}-{next_value[period]:05d}")
        next_value[period] += 1
    return numbers


def next_ticket_number(conn: Connection, prefix: str, when: dt.datetime, timezone: str) -> str:
    """Allocate the next number of the period (inside the caller's transaction)."""
    return allocate_ticket_numbers(conn, [ticket_period(prefix, when, timezone)])[0]
