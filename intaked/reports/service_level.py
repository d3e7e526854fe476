"""PLACEHOLDER for the service-level report (issue 18, point 2), written elsewhere: this stand-in
only counts the new tickets of each group so that the mailing of reports can be built and tested
against the documented shape. The lead replaces it with the real module at merge."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from intaked.config import Settings
from intaked.store.models import ticket_table

_GROUP_COLUMNS = {
    "team": ticket_table.c.team,
    "handler": ticket_table.c.first_response_by,
    "priority": ticket_table.c.priority,
}
_COUNTS = ("carried_over", "handled", "on_time", "open_not_overdue", "late")
_ESCALATED = ("escalated_once", "escalated_twice", "escalated_3_plus")
_RATES = (
    "completion_rate",
    "avg_escalations",
    "service_level",
    "commitment_kept_rate",
    "first_commitment_kept_rate",
    "standard_met_rate",
    "satisfaction_avg",
)


def _row(group: str, new: int) -> dict[str, Any]:
    row: dict[str, Any] = {"group": group, "new": new, "satisfaction_responses": 0}
    row.update(dict.fromkeys(_COUNTS + _ESCALATED, 0))
    row.update(dict.fromkeys(_RATES))
    row["satisfaction_distribution"] = {str(score): 0 for score in range(1, 6)}
    row["sla"] = {}
    return row


def build_report(
    engine: Engine, settings: Settings, start: dt.date, end: dt.date, by: str = "team"
) -> dict[str, Any]:
    """The report of [start 00:00, end + 1 day 00:00) local time (a stand-in: new tickets only)."""
    zone = ZoneInfo(settings.tickets.timezone)
    since = dt.datetime.combine(start, dt.time(), zone).astimezone(dt.UTC)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    column = _GROUP_COLUMNS[by]
    with engine.connect() as conn:
        counts = conn.execute(
            select(column, func.count())
            .where(ticket_table.c.created_at >= since, ticket_table.c.created_at < until)
            .where(ticket_table.c.status != "spam")
            .group_by(column)
        ).all()
    rows = sorted((_row(str(group or "(none)"), int(n)) for group, n in counts), key=lambda r: r["group"])
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "by": by,
        "timezone": settings.tickets.timezone,
        "rows": rows,
        "total": _row("total", sum(r["new"] for r in rows)),
        "hotline": {
            "calls": 0,
            "answered_by_desk": 0,
            "voicemail": 0,
            "missed": 0,
            "missed_rate": None,
            "avg_answer_seconds": None,
        },
    }
