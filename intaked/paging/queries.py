"""Read-only questions about pages: a ticket's page and its attempts (``intaked page show``),
and whether an SMS, call or hang-up is due (the daemon's sender wakes on it)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, Engine, or_, select

from intaked.paging.rows import PageNotFound
from intaked.store.engine import read_only
from intaked.store.models import outbox_table, page_attempt_table, page_table, ticket_table
from intaked.store.types import utcnow

_pages = page_table
_attempts = page_attempt_table
_tickets = ticket_table


def page_for_ticket(conn: Connection, number: str) -> Any:
    """The ticket's newest page."""
    row = (
        conn.execute(
            select(_pages)
            .join(_tickets, _tickets.c.id == _pages.c.ticket_id)
            .where(_tickets.c.number == number)
            .order_by(_pages.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise PageNotFound(f"{number} has no page")
    return row


def timeline(conn: Connection, number: str) -> tuple[Any, list[Any]]:
    """The page of ticket ``number`` and its attempts, oldest first (``intaked page show``)."""
    page = page_for_ticket(conn, number)
    attempts = (
        conn.execute(select(_attempts).where(_attempts.c.page_id == page["id"]).order_by(_attempts.c.id))
        .mappings()
        .all()
    )
    return page, list(attempts)


def page_sends_due(engine: Engine, now: dt.datetime | None = None) -> bool:
    """Whether an SMS, call or hang-up is waiting to be sent now (one indexed probe)."""
    now = now or utcnow()
    with read_only(engine).connect() as conn:
        return (
            conn.execute(
                select(outbox_table.c.id)
                .where(
                    outbox_table.c.state == "pending",
                    outbox_table.c.kind.in_(("sms", "call", "call_cancel")),
                    or_(outbox_table.c.next_attempt_at.is_(None), outbox_table.c.next_attempt_at <= now),
                )
                .limit(1)
            ).first()
            is not None
        )
