"""When the scheduled service-level reports are due, and queuing them (``[reports]``).

A weekly report covers an ISO week (Monday 00:00 to the next Monday 00:00 in
``tickets.timezone``) and is due on the Monday after it at ``reports.weekly.send_at`` (local); a
monthly one covers a calendar month and is due on the 1st after it at ``reports.monthly.send_at``.
At each look (the scheduler's ``reports`` job, once per ``reports.check_seconds`` slot across the
nodes: intaked/scheduler.py) the latest period whose send time has passed is the one due; older
periods are not sent late (a node down over a whole period sends only the latest report).

Each report goes to each recipient once: its outbox row's idempotency key is
``report:<weekly|monthly>:<period>:<recipient>`` (the period ``2026-W49`` or ``2026-11``). A look
first asks the outbox which recipients have theirs; only if one lacks it is the report built (on
the worker's database thread, never on the event loop) and the missing rows queued, in one
transaction. Two nodes looking at once may both build it; the unique key keeps one row each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Engine, select

from intaked.config import ScheduledReportSettings, Settings
from intaked.outbound.outbox import enqueue
from intaked.reports.mailing import report_mail
from intaked.reports.service_level import build_report
from intaked.store.models import outbox_table

log = structlog.get_logger(__name__)

KINDS = ("weekly", "monthly")


@dataclass(frozen=True)
class Period:
    """One period of a scheduled report: ``label`` (``2026-W49``, ``2026-11``), its first and
    last day (local), and when its report may be sent (UTC)."""

    kind: str
    label: str
    first_day: dt.date
    last_day: dt.date
    send_after: dt.datetime


def _week(monday: dt.date, send_day: dt.date, send_time: dt.time, zone: ZoneInfo) -> Period:
    year, week, _ = monday.isocalendar()
    send_after = dt.datetime.combine(send_day, send_time, zone).astimezone(dt.UTC)
    return Period("weekly", f"{year}-W{week:02d}", monday, monday + dt.timedelta(days=6), send_after)


def _month(first: dt.date, send_time: dt.time, zone: ZoneInfo) -> Period:
    following = (first + dt.timedelta(days=32)).replace(day=1)
    send_after = dt.datetime.combine(following, send_time, zone).astimezone(dt.UTC)
    return Period("monthly", f"{first:%Y-%m}", first, following - dt.timedelta(days=1), send_after)


def latest_period(kind: str, send_at: tuple[int, int], timezone: str, now: dt.datetime) -> Period:
    """The latest period of ``kind`` whose send time (``send_at``, local hour and minute, on the
    first day after it) is at or before ``now``."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    send_time = dt.time(*send_at)
    if kind == "weekly":
        this_monday = today - dt.timedelta(days=today.weekday())
        period = _week(this_monday - dt.timedelta(days=7), this_monday, send_time, zone)
        if period.send_after > now:
            period = _week(
                this_monday - dt.timedelta(days=14), this_monday - dt.timedelta(days=7), send_time, zone
            )
        return period
    if kind == "monthly":
        this_month = today.replace(day=1)
        period = _month((this_month - dt.timedelta(days=1)).replace(day=1), send_time, zone)
        if period.send_after > now:
            period = _month((period.first_day - dt.timedelta(days=1)).replace(day=1), send_time, zone)
        return period
    raise ValueError(f"unknown report kind {kind!r}")


def idempotency_key(period: Period, recipient: str) -> str:
    return f"report:{period.kind}:{period.label}:{recipient}"[:255]


def _scheduled(settings: Settings) -> list[tuple[str, ScheduledReportSettings]]:
    return [
        (kind, getattr(settings.reports, kind)) for kind in KINDS if getattr(settings.reports, kind).enabled
    ]


def _missing(engine: Engine, period: Period, recipients: list[str]) -> list[str]:
    """The recipients whose mail of ``period`` is not in the outbox yet."""
    keys = {recipient: idempotency_key(period, recipient) for recipient in recipients}
    with engine.connect() as conn:
        queued = set(
            conn.execute(
                select(outbox_table.c.idempotency_key).where(
                    outbox_table.c.idempotency_key.in_(sorted(keys.values()))
                )
            ).scalars()
        )
    return [recipient for recipient in recipients if keys[recipient] not in queued]


def _chart(render: Callable[..., bytes], report: dict[str, Any], kind: str, label: str) -> bytes | None:
    """The report's bar chart; None (the mail goes without it, its figures are all in the
    tables) when it cannot be drawn: a missing font or a broken matplotlib must not hold the
    report back."""
    try:
        return render(report["rows"], title=label)
    except Exception:  # anything matplotlib may raise
        log.exception("report_chart_failed", report=kind, period=label)
        return None


def queue_due_reports(engine: Engine, settings: Settings, now: dt.datetime) -> int:
    """Queue the due reports that are not queued yet (blocking); how many mails were queued."""
    from intaked.reports.chart import render_png  # matplotlib, loaded only once a report is due

    queued = 0
    for kind, cfg in _scheduled(settings):
        period = latest_period(kind, cfg.send_time, settings.tickets.timezone, now)
        missing = _missing(engine, period, list(dict.fromkeys(cfg.recipients)))
        if not missing:
            continue
        report = build_report(engine, settings, period.first_day, period.last_day, cfg.by)
        chart = _chart(render_png, report, kind, period.label)
        rows = [
            report_mail(
                settings,
                report,
                chart,
                kind=kind,
                label=period.label,
                recipient=recipient,
                key=idempotency_key(period, recipient),
                now=now,
            )
            for recipient in missing
        ]
        with engine.begin() as conn:
            added = enqueue(conn, rows, now)
        queued += added
        log.info("report_queued", report=kind, period=period.label, recipients=missing, queued=added)
    return queued
