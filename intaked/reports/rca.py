"""The RCA follow-ups of a report's period (issue 19 point 4): the root-cause analyses the QRC
owes after major incidents (intaked/tickets/rca.py), listed in the service-level report.

Listed: every follow-up opened in the period, and every one opened before it that was still not
resolved or closed. ``due`` is its commitment (``paging.rca_due`` after the incident's
resolution); ``overdue`` says whether it was resolved after its due time, or is unresolved past
it at the report's horizon (the period's end, or now for a period under way).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, exists, or_, select
from sqlalchemy.orm import aliased

from intaked.reports.measures import Bounds
from intaked.store.models import ticket_event_table, ticket_table

_t = ticket_table
_DONE = ("resolved", "closed")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def rca_followups(conn: Connection, bounds: Bounds, zone: str) -> list[dict[str, Any]]:
    """The ``rca`` list of the report, oldest first: number, incident (its number), due (ISO
    8601 in ``zone``), status and overdue."""
    incident = aliased(_t)
    events = ticket_event_table
    query = (
        select(_t.c.number, incident.c.number.label("incident"), _t.c.commitment_at, _t.c.status)
        .add_columns(_t.c.resolved_at)
        .join(incident, incident.c.id == _t.c.parent_id)
        .where(
            exists().where(events.c.ticket_id == _t.c.id, events.c.kind == "rca_for"),
            _t.c.created_at < bounds.end,
            or_(_t.c.created_at >= bounds.start, _t.c.status.not_in(_DONE)),
        )
        .order_by(_t.c.created_at, _t.c.id)
    )
    tz = ZoneInfo(zone)
    listed = []
    for row in conn.execute(query):
        due = _utc(row.commitment_at)
        done_at = _utc(row.resolved_at) if row.status in _DONE else None
        horizon = done_at or bounds.decided_before
        listed.append(
            {
                "number": row.number,
                "incident": row.incident,
                "due": due.astimezone(tz).isoformat() if due else None,
                "status": row.status,
                "overdue": due is not None and horizon > due,
            }
        )
    return listed
