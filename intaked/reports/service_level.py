"""The service-level report (issue 18 point 2; seed 003's weekly "service request index
analysis", seed 000's SLA targets): ``build_report`` returns the JSON document that the command
prints in each format and the scheduled mails are made from.

The period runs from ``start`` 00:00 to ``end`` + 1 day 00:00 in ``tickets.timezone`` (``end``
inclusive). The counting is :mod:`intaked.reports.measures`' one query; here the counts become a
row per group (team, handler or priority), a total, and their rates. docs/service-levels.md
defines every figure.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from intaked.config import Settings
from intaked.reports.hotline import hotline_figures
from intaked.reports.measures import CLOCKS, GROUPINGS, UNTRIAGED, Bounds, report_query
from intaked.reports.rca import rca_followups
from intaked.store.engine import read_snapshot
from intaked.store.models import PRIORITIES

__all__ = ["GROUPINGS", "ROW_KEYS", "SLA_PRIORITIES", "ReportError", "build_report", "period_bounds"]

TOTAL_GROUP: Final = "all"
SLA_PRIORITIES: Final = (*PRIORITIES, UNTRIAGED)
ROW_KEYS: Final = (
    "group",
    "carried_over",
    "new",
    "handled",
    "on_time",
    "open_not_overdue",
    "late",
    "escalated_once",
    "escalated_twice",
    "escalated_3_plus",
    "completion_rate",
    "avg_escalations",
    "service_level",
    "commitment_kept_rate",
    "first_commitment_kept_rate",
    "standard_met_rate",
    "satisfaction_responses",
    "satisfaction_avg",
    "satisfaction_distribution",
    "sla",
)
DIGITS: Final = 4  # rates and averages are rounded to this many decimals

Counts = dict[str, int]


class ReportError(ValueError):
    """The report was asked for wrongly (a period that ends before it starts, an unknown
    grouping); the message says what to change."""


def period_bounds(start: dt.date, end: dt.date, zone: str, now: dt.datetime | None = None) -> Bounds:
    """``[start 00:00, end + 1 day 00:00)`` in ``zone`` as UTC instants. Raises
    :class:`ReportError` when ``end`` is before ``start``."""
    if end < start:
        raise ReportError(f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    tz = ZoneInfo(zone)
    begins = dt.datetime.combine(start, dt.time(0), tz).astimezone(dt.UTC)
    ends = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tz).astimezone(dt.UTC)
    current = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return Bounds(start=begins, end=ends, decided_before=min(ends, max(current, begins)))


def build_report(
    engine: Engine, settings: Settings, start: dt.date, end: dt.date, by: str = "team"
) -> dict[str, Any]:
    """The service-level report of the days ``start`` .. ``end`` (inclusive, in
    ``tickets.timezone``), one row per ``by`` group (``team``, ``handler`` or ``priority``),
    their total (group ``all``), the hotline's figures and the RCA follow-ups (``rca``). Raises
    :class:`ReportError`."""
    if by not in GROUPINGS:
        raise ReportError(f"unknown grouping {by!r}: choose one of {', '.join(GROUPINGS)}")
    zone = settings.tickets.timezone
    bounds = period_bounds(start, end, zone)
    with read_snapshot(engine).connect() as conn:  # the tickets and the calls in one snapshot
        result = conn.execute(report_query(by, bounds)).mappings().all()
        hotline = hotline_figures(conn, bounds)
        rca = rca_followups(conn, bounds, zone)
    groups, sla = _fold(result, GROUPINGS[by][1])
    total: Counts = defaultdict(int)
    total_sla: dict[str, Counts] = defaultdict(lambda: defaultdict(int))
    for name, counts in groups.items():
        _add(total, counts)
        for priority, clocks in sla[name].items():
            _add(total_sla[priority], clocks)
    return {
        "period": {"from": start.isoformat(), "to": end.isoformat()},
        "by": by,
        "timezone": zone,
        "rows": [_row(name, groups[name], sla[name]) for name in sorted(groups)],
        "total": _row(TOTAL_GROUP, total, total_sla),
        "hotline": hotline,
        "rca": rca,
    }


def _add(into: Counts, counts: Counts) -> None:
    for key, value in counts.items():
        into[key] += value


def _fold(result: Any, none_label: str) -> tuple[dict[str, Counts], dict[str, dict[str, Counts]]]:
    """The query's (group, priority) rows as counts per group and SLA counts per group and
    priority (a group whose name is NULL is shown as ``none_label``)."""
    groups: dict[str, Counts] = defaultdict(lambda: defaultdict(int))
    sla: dict[str, dict[str, Counts]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    clock_keys = {f"{clock}_{part}" for clock in CLOCKS for part in ("met", "count")}
    for found in result:
        name = none_label if found["grp"] is None else str(found["grp"])
        priority = UNTRIAGED if found["prio"] is None else str(found["prio"])
        for key, value in found.items():
            if key in ("grp", "prio"):
                continue
            target = sla[name][priority] if key in clock_keys else groups[name]
            target[key] += int(value or 0)
    return groups, sla


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, DIGITS)


def _row(name: str, counts: Counts, sla: dict[str, Counts]) -> dict[str, Any]:
    """One row of the report (or the total) from its counts."""
    handled = counts["carried_over"] + counts["new"]
    completed = counts["on_time"] + counts["late"]
    responses = counts["satisfaction_responses"]
    return {
        "group": name,
        "carried_over": counts["carried_over"],
        "new": counts["new"],
        "handled": handled,
        "on_time": counts["on_time"],
        "open_not_overdue": counts["open_not_overdue"],
        "late": counts["late"],
        "escalated_once": counts["escalated_once"],
        "escalated_twice": counts["escalated_twice"],
        "escalated_3_plus": counts["escalated_3_plus"],
        "completion_rate": _ratio(completed, handled),
        "avg_escalations": _ratio(counts["escalations"], handled),
        "service_level": _ratio(counts["on_time"], handled),
        "commitment_kept_rate": _ratio(counts["on_time"], completed),
        "first_commitment_kept_rate": _ratio(counts["first_commitment_kept"], completed),
        "standard_met_rate": _ratio(counts["standard_met"], completed),
        "satisfaction_responses": responses,
        "satisfaction_avg": _ratio(counts["satisfaction_sum"], responses),
        "satisfaction_distribution": {str(score): counts[f"satisfaction_{score}"] for score in range(1, 6)},
        "sla": {priority: _clocks(sla.get(priority, {})) for priority in SLA_PRIORITIES},
    }


def _clocks(counts: Counts) -> dict[str, float | int | None]:
    """The SLA figures of one priority: per clock, the fraction met and how many were decided."""
    figures: dict[str, float | int | None] = {}
    for clock in CLOCKS:
        met, decided = counts.get(f"{clock}_met", 0), counts.get(f"{clock}_count", 0)
        figures[f"{clock}_met"] = _ratio(met, decided)
        figures[f"{clock}_count"] = decided
    return figures
