"""Repeat calls (重覆報修): the open phone ticket a caller's new call joins instead of filing one."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, select

from intaked.config import Settings
from intaked.sla.targets import wall_time
from intaked.store.models import call_table, ticket_table

OPEN_STATUSES = ("new", "open", "pending")

_calls = call_table
_tickets = ticket_table


def repeat_window(settings: Settings) -> dt.timedelta:
    """``hotline.repeat_window`` as a length of time (days count as 24 hours)."""
    return wall_time(settings.hotline.repeat_window)


def joinable_ticket(
    conn: Connection, settings: Settings, from_number: str, started_at: dt.datetime
) -> tuple[int, str] | None:
    """The open phone ticket of the same caller with a call within the repeat window, newest first."""
    if not from_number.startswith("+"):
        return None  # anonymous or withheld caller ids are not one person
    window = repeat_window(settings)
    row = conn.execute(
        select(_tickets.c.id, _tickets.c.number)
        .select_from(_calls.join(_tickets, _calls.c.ticket_id == _tickets.c.id))
        .where(
            _calls.c.from_number == from_number,
            _calls.c.started_at >= started_at - window,
            _calls.c.started_at <= started_at + window,
            _tickets.c.status.in_(OPEN_STATUSES),
            _tickets.c.channel == "phone",
        )
        .order_by(_calls.c.started_at.desc(), _calls.c.id.desc())
        .limit(1)
    ).first()
    return (int(row.id), str(row.number)) if row else None
