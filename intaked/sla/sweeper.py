"""The auto-close sweeper: resolved tickets whose ``auto_close_at`` has passed become ``closed``.

``auto_close_at`` is set when a ticket is resolved (``lifecycle.auto_close_after`` on the
lifecycle clock from ``resolved_at``) and cleared when a reply reopens it, so one pass reads only
the tickets that are due (index on ``status, auto_close_at``): its cost grows with the number due,
not with the size of the table. On PostgreSQL an advisory lock lets one daemon sweep at a time;
a pass run twice closes nothing twice (the UPDATE only takes tickets still ``resolved``).
Given the settings, it queues each closed ticket's satisfaction survey in the same transaction
(intaked/surveys/sending.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Engine, select, update

from intaked.config import Settings
from intaked.sla.tracker import event
from intaked.store.dialect import try_lock_key
from intaked.store.engine import read_only
from intaked.store.models import ticket_event_table, ticket_table
from intaked.store.types import utcnow
from intaked.surveys.sending import queue_surveys

SWEEP_LOCK = 0x1A7AED02
_t = ticket_table


@dataclass(frozen=True)
class Closed:
    id: int
    number: str
    auto_close_at: dt.datetime


def _due(now: dt.datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (_t.c.status == "resolved", _t.c.auto_close_at <= now)


def sweep(
    engine: Engine, now: dt.datetime | None = None, *, dry_run: bool = False, settings: Settings | None = None
) -> list[Closed]:
    """Close every resolved ticket due at ``now``; returns them (with ``dry_run``: what would close).
    With ``settings``, their requesters' surveys are queued too."""
    now = now or utcnow()
    columns = (_t.c.id, _t.c.number, _t.c.auto_close_at)
    if dry_run:
        with read_only(engine).connect() as conn:
            rows = conn.execute(select(*columns).where(*_due(now)).order_by(_t.c.auto_close_at)).all()
        return [Closed(*row) for row in rows]
    with engine.begin() as conn:
        if not try_lock_key(conn, SWEEP_LOCK):
            return []
        rows = conn.execute(
            update(_t)
            .where(*_due(now))
            .values(
                status="closed", closed_at=now, sla_status="closed", sla_next_check_at=None, updated_at=now
            )
            .returning(*columns)
        ).all()
        if rows:
            conn.execute(
                ticket_event_table.insert(),
                [
                    event(row.id, "auto_closed", {"auto_close_at": row.auto_close_at.isoformat()}, now)
                    for row in rows
                ],
            )
            if settings is not None:
                queue_surveys(conn, settings, [row.id for row in rows], now)
    return sorted((Closed(*row) for row in rows), key=lambda c: c.auto_close_at)
