"""The hotline's figures for a report's period (issue 18 point 6; seed 003 watches answer rates):
the calls that started in the period and what became of them (``calls.outcome``), in one
aggregating query.

- ``calls``: every call started in the period (including any still ``in_progress``);
- ``answered_by_desk``, ``voicemail``, ``missed``: by outcome;
- ``missed_rate``: missed / calls (null without calls);
- ``avg_answer_seconds``: the mean of ``answered_at - started_at`` over the calls the desk
  answered that have an ``answered_at`` (null when Twilio reported no answer time for any).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, func, select

from intaked.reports.measures import Bounds, seconds_between
from intaked.store.models import call_table

_c = call_table.c
OUTCOMES = ("answered_by_desk", "voicemail", "missed")


def hotline_figures(conn: Connection, bounds: Bounds) -> dict[str, Any]:
    """The ``hotline`` object of the report."""
    in_period = and_(_c.started_at >= bounds.start, _c.started_at < bounds.end)
    answered = and_(_c.outcome == "answered_by_desk", _c.answered_at.is_not(None))
    query = select(
        func.count().label("calls"),
        *(func.count().filter(_c.outcome == outcome).label(outcome) for outcome in OUTCOMES),
        func.avg(seconds_between(_c.started_at, _c.answered_at)).filter(answered).label("answer"),
    ).where(in_period)
    row = conn.execute(query).one()
    calls = int(row.calls)
    answer = None if row.answer is None else round(float(row.answer), 1)
    return {
        "calls": calls,
        "answered_by_desk": int(row.answered_by_desk),
        "voicemail": int(row.voicemail),
        "missed": int(row.missed),
        "missed_rate": round(row.missed / calls, 4) if calls else None,
        "avg_answer_seconds": answer,
    }
