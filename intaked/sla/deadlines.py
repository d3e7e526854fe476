"""A ticket's deadlines, computed from what it is now (a pure function of the ticket and the context).

Triage: from ``created_at`` on the triage clock (``triage.within``), until a person sets the
priority. Response: from ``created_at`` on the priority's response clock. Resolution: from
``occurred_at`` (default ``created_at``) on the resolution clock, plus the time the ticket spent
waiting on the requester (``sla_paused_seconds``, measured on the same clock). Auto-close: from
``resolved_at`` on the lifecycle clock. A ticket in status ``spam`` (quarantined) has no deadline at
all; once released, triage and response count from ``released_at`` instead of ``created_at`` (the
time in quarantine is nobody's delay). ``sla_next_check_at`` is the next instant at which a
warning or a breach falls due, so the periodic check only looks at tickets that have one due.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from intaked.sla.calendar import WorkingCalendar
from intaked.sla.context import SlaContext
from intaked.sla.targets import Target

UTC = dt.UTC


@dataclass(frozen=True)
class Deadlines:
    """What the clocks say about one ticket."""

    calendar: str
    triage_due_at: dt.datetime | None
    response_due_at: dt.datetime | None
    response_warn_at: dt.datetime | None
    resolution_due_at: dt.datetime | None
    resolution_warn_at: dt.datetime | None
    auto_close_at: dt.datetime | None
    next_check_at: dt.datetime | None
    snapshot: dict[str, Any]

    def columns(self) -> dict[str, Any]:
        """The ``tickets`` columns these deadlines set."""
        return {
            "calendar": self.calendar,
            "triage_due_at": self.triage_due_at,
            "response_due_at": self.response_due_at,
            "resolution_due_at": self.resolution_due_at,
            "auto_close_at": self.auto_close_at,
            "sla_next_check_at": self.next_check_at,
            "sla_snapshot": json.dumps(self.snapshot, ensure_ascii=False, sort_keys=True),
        }


def at_fraction(
    target: Target,
    calendar: WorkingCalendar,
    start: dt.datetime,
    fraction: float,
    extra: dt.timedelta = dt.timedelta(0),
) -> dt.datetime:
    """When ``fraction`` of ``target`` has elapsed (the warning point), ``extra`` (time on hold) added."""
    amount = target.length(calendar) * fraction
    amount -= dt.timedelta(microseconds=amount.microseconds)  # whole seconds: stable round trips
    amount += extra
    if target.clock == "working":
        return calendar.add_working_time(start, amount)
    return start.astimezone(UTC) + amount


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(UTC) if value is not None else None


class _Window(NamedTuple):
    """A target's warning instant and deadline (both None when the target does not apply)."""

    warn: dt.datetime | None = None
    due: dt.datetime | None = None


def _window(
    target: Target,
    calendar: WorkingCalendar,
    start: dt.datetime,
    warn: float,
    paused: dt.timedelta = dt.timedelta(0),
) -> _Window:
    """When ``target``, started at ``start`` and held for ``paused``, warns and falls due (UTC)."""
    return _Window(
        warn=_utc(at_fraction(target, calendar, start, warn, paused)),
        due=_utc(target.deadline(calendar, start, paused)),
    )


def _note(target: Target, since: str) -> dict[str, Any]:
    """How the snapshot describes ``target``, counted from the column ``since``."""
    return {"target": target.text, "clock": target.clock, "from": since}


def compute(ctx: SlaContext, ticket: Mapping[Any, Any]) -> Deadlines:
    """The deadlines of ``ticket`` (a row or mapping with the ``tickets`` columns)."""
    calendar_name = ctx.calendar_name_for(ticket["team"])
    calendar = ctx.calendars[calendar_name]
    received: dt.datetime = ticket["created_at"]
    created: dt.datetime = ticket.get("released_at") or received  # triage and response start
    occurred: dt.datetime = ticket["occurred_at"] or received
    priority: str | None = ticket["priority"]
    paused = dt.timedelta(seconds=float(ticket["sla_paused_seconds"] or 0.0))
    warn = ctx.settings.sla.warn_at
    since = "released_at" if ticket.get("released_at") else "created_at"
    if ticket["status"] == "spam":
        return Deadlines(calendar_name, None, None, None, None, None, None, None, {"calendar": calendar_name})
    snapshot: dict[str, Any] = {
        "calendar": calendar_name,
        "timezone": str(calendar.tz),
        "standard_day_hours": calendar.standard_day.total_seconds() / 3600,
        "triage": _note(ctx.triage, since),
        "priority": priority,
        "warn_at": warn,
    }
    triage_due = _utc(ctx.triage.deadline(calendar, created))
    response = resolution = _Window()
    if priority is not None and priority in ctx.policies:
        policy = ctx.policies[priority]
        response = _window(policy.response, calendar, created, warn)
        resolution = _window(policy.resolution, calendar, occurred, warn, paused)
        snapshot["response"] = _note(policy.response, since)
        snapshot["resolution"] = _note(policy.resolution, "occurred_at") | {
            "paused_seconds": paused.total_seconds()
        }
    return Deadlines(
        calendar=calendar_name,
        triage_due_at=triage_due,
        response_due_at=response.due,
        response_warn_at=response.warn,
        resolution_due_at=resolution.due,
        resolution_warn_at=resolution.warn,
        auto_close_at=_auto_close(ctx, calendar, ticket, snapshot),
        next_check_at=_next_check(ticket, triage_due, response, resolution),
        snapshot=snapshot,
    )


def _auto_close(
    ctx: SlaContext, calendar: WorkingCalendar, ticket: Mapping[Any, Any], snapshot: dict[str, Any]
) -> dt.datetime | None:
    """When a resolved ticket closes by itself (None unless resolved); noted in ``snapshot``."""
    if ticket["status"] != "resolved" or ticket["resolved_at"] is None:
        return None
    snapshot["auto_close"] = _note(ctx.auto_close, "resolved_at")
    return _utc(ctx.auto_close.deadline(calendar, ticket["resolved_at"]))


def _next_check(
    ticket: Mapping[Any, Any],
    triage_due: dt.datetime | None,
    response: _Window,
    resolution: _Window,
) -> dt.datetime | None:
    """The earliest warning or deadline not yet acted on, of the targets whose clock runs
    (``response`` and ``resolution``: their warning and due instants); None when none is left."""
    status = ticket["status"]
    if status == "closed":
        return None
    pending: list[dt.datetime | None] = []
    if ticket["priority"] is None and ticket["triage_breached_at"] is None:
        pending.append(triage_due)
    running = {
        "response": ticket["first_response_at"] is None and status == "new",
        "resolution": ticket["resolved_at"] is None and status in ("new", "open"),
    }
    for target, (warn_at, due_at) in (("response", response), ("resolution", resolution)):
        if not running[target]:
            continue
        if ticket[f"{target}_warned_at"] is None:
            pending.append(warn_at)
        if ticket[f"{target}_breached_at"] is None:
            pending.append(due_at)
    due = [instant for instant in pending if instant is not None]
    return min(due) if due else None


def for_new_ticket(ctx: SlaContext, priority: str, start: dt.datetime, calendar: str) -> Deadlines:
    """The deadlines a new ticket of ``priority`` filed at ``start`` gets on ``calendar`` (a name
    in ``ctx.calendars``), as if that calendar were the default one (``intaked sla deadlines``)."""
    if calendar != ctx.settings.sla.calendar:
        sla = ctx.settings.sla.model_copy(update={"calendar": calendar})
        ctx = replace(ctx, settings=ctx.settings.model_copy(update={"sla": sla}))
    start = start.astimezone(UTC)
    probe = {
        "team": None,
        "created_at": start,
        "occurred_at": start,
        "priority": priority,
        "status": "new",
        "sla_paused_seconds": 0.0,
        "resolved_at": None,
        "triage_breached_at": None,
        "first_response_at": None,
        "response_warned_at": None,
        "response_breached_at": None,
        "resolution_warned_at": None,
        "resolution_breached_at": None,
    }
    return compute(ctx, probe)
