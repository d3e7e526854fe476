"""The service-level report's one aggregating query over ``tickets`` (docs/service-levels.md,
"The service-level report").

Every figure is a ``count(*) FILTER (WHERE ...)`` (or a filtered ``sum``) over the tickets the
period touches, grouped by the report's group and the ticket's priority (the SLA figures are per
priority), so the database does the counting in one pass and returns a few rows per group. Both
SQLite (3.30+) and PostgreSQL spell ``FILTER`` the same way.

The tickets the period touches (``touched``): not spam, created before the period's end, and
either not completed before its start (the handled tickets) or answered the satisfaction survey
in the period. A ticket is *completed* at ``resolved_at``, else ``closed_at``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    extract,
    func,
    or_,
    select,
)

from intaked.store.models import ticket_table
from intaked.store.types import UTCDateTime

_t = ticket_table.c

# The column each grouping reads; NULL is shown as the label next to it.
GROUPINGS: Final[dict[str, tuple[ColumnElement[Any], str]]] = {
    "team": (_t.team, "(none)"),
    "handler": (_t.first_response_by, "(none)"),
    "priority": (_t.priority, "(untriaged)"),
}
UNTRIAGED: Final = "(untriaged)"

# The SLA clocks: the deadline, the instant that meets it, the breach intaked recorded.
CLOCKS: Final[dict[str, tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]]] = {
    "triage": (_t.triage_due_at, _t.triaged_at, _t.triage_breached_at),
    "response": (_t.response_due_at, _t.first_response_at, _t.response_breached_at),
    "resolution": (
        _t.resolution_due_at,
        func.coalesce(_t.resolved_at, _t.closed_at),
        _t.resolution_breached_at,
    ),
}


@dataclass(frozen=True)
class Bounds:
    """The period as instants (UTC): ``[start, end)``; ``decided_before``: the end, or now when
    the period is still running (an SLA deadline not yet reached has not been missed)."""

    start: dt.datetime
    end: dt.datetime
    decided_before: dt.datetime


def _instant(name: str, value: dt.datetime) -> BindParameter[dt.datetime]:
    return bindparam(name, value, type_=UTCDateTime())


class _Terms:
    """The conditions the figures are made of, for one period."""

    def __init__(self, bounds: Bounds) -> None:
        self.start = _instant("period_start", bounds.start)
        self.end = _instant("period_end", bounds.end)
        self.decided_before = _instant("decided_before", bounds.decided_before)
        self.done = func.coalesce(_t.resolved_at, _t.closed_at)
        done = self.done
        # ``coalesce(created_at, end) < end`` is ``created_at < end`` (never NULL) that no index
        # answers: nearly every ticket was created before a recent period's end, and SQLite (no
        # STAT4) would otherwise walk the created_at index for all of them, slower than a scan.
        self.touched = and_(
            _t.status != "spam",
            func.coalesce(_t.created_at, self.end) < self.end,
            or_(done.is_(None), done >= self.start, _t.satisfaction_at >= self.start),
        )
        self.handled = or_(done.is_(None), done >= self.start)
        self.completed = and_(done >= self.start, done < self.end)
        self.answered = and_(
            _t.satisfaction_at >= self.start,
            _t.satisfaction_at < self.end,
            _t.satisfaction_score.is_not(None),
        )

    def kept(self, promise: ColumnElement[Any]) -> ColumnElement[bool]:
        """Completed in the period by ``promise`` (a ticket without that promise broke none)."""
        return and_(self.completed, or_(promise.is_(None), self.done <= promise))

    def clock(self, name: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        """(met in the period, decided in the period) of an SLA clock: met when the meeting
        instant came at or before the deadline and no breach was recorded, counted in the period
        it was met in; otherwise missed, counted in the period of the breach (the recorded one,
        else the deadline) once that instant has passed."""
        due, meets, breached = CLOCKS[name]
        met = and_(meets.is_not(None), meets <= due, breached.is_(None))
        met_here = and_(met, meets >= self.start, meets < self.decided_before)
        missed_at = func.coalesce(breached, due)
        missed_here = and_(
            or_(meets.is_(None), meets > due, breached.is_not(None)),
            missed_at >= self.start,
            missed_at < self.decided_before,
        )
        live = and_(self.handled, due.is_not(None))
        return and_(live, met_here), and_(live, or_(met_here, missed_here))


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.count().filter(condition)


def figures(terms: _Terms) -> dict[str, ColumnElement[Any]]:
    """Every counted figure, by name (the report derives its rates from these)."""
    escalations = _t.escalation_count
    commitment = _t.commitment_at
    named: dict[str, ColumnElement[Any]] = {
        "carried_over": _count(and_(terms.handled, _t.created_at < terms.start)),
        "new": _count(and_(terms.handled, _t.created_at >= terms.start)),
        "on_time": _count(terms.kept(commitment)),
        "late": _count(and_(terms.completed, commitment.is_not(None), terms.done > commitment)),
        "open_not_overdue": _count(
            and_(
                terms.handled,
                or_(terms.done.is_(None), terms.done >= terms.end),
                or_(commitment.is_(None), commitment >= terms.end),
            )
        ),
        "escalated_once": _count(and_(terms.handled, escalations == 1)),
        "escalated_twice": _count(and_(terms.handled, escalations == 2)),
        "escalated_3_plus": _count(and_(terms.handled, escalations >= 3)),
        "escalations": func.sum(escalations).filter(terms.handled),
        "first_commitment_kept": _count(terms.kept(_t.first_commitment_at)),
        "standard_met": _count(terms.kept(_t.standard_due_at)),
        "satisfaction_responses": _count(terms.answered),
        "satisfaction_sum": func.sum(_t.satisfaction_score).filter(terms.answered),
    }
    for score in range(1, 6):
        named[f"satisfaction_{score}"] = _count(and_(terms.answered, _t.satisfaction_score == score))
    for clock in CLOCKS:
        met, decided = terms.clock(clock)
        named[f"{clock}_met"] = _count(met)
        named[f"{clock}_count"] = _count(decided)
    return named


def report_query(by: str, bounds: Bounds) -> Select[Any]:
    """One row per (group, priority) the period touches: ``grp``, ``prio`` and every figure."""
    terms = _Terms(bounds)
    column = GROUPINGS[by][0]
    keys = [column.label("grp"), _t.priority.label("prio")]
    named = figures(terms)
    query = select(*keys, *(value.label(name) for name, value in named.items())).where(terms.touched)
    return query.group_by(column) if by == "priority" else query.group_by(column, _t.priority)


def baseline_query(by: str, bounds: Bounds) -> Select[Any]:
    """The plain ``SELECT group, count(*) ... GROUP BY group`` over the same tickets (the
    benchmark's yardstick)."""
    column = GROUPINGS[by][0]
    return select(column, func.count()).where(_Terms(bounds).touched).group_by(column)


def seconds_between(earlier: ColumnElement[Any], later: ColumnElement[Any]) -> ColumnElement[Any]:
    """``later - earlier`` in seconds, in SQL both databases speak (``EXTRACT(EPOCH ...)``;
    whole seconds on SQLite)."""
    return extract("epoch", later) - extract("epoch", earlier)
