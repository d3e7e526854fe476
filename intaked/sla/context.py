"""The working-time setup in force: calendars (configuration plus run-time overrides from the
database), the targets per priority, triage and auto-close, as objects the clocks can use."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from intaked.config import CalendarSettings, Settings
from intaked.sla.calendar import CalendarSpec, Override, WorkingCalendar
from intaked.sla.targets import PriorityPolicy, Target, parse_duration
from intaked.store.engine import read_only
from intaked.store.models import calendar_override_table

WEEKDAY_NUMBERS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}

OverrideRows = Mapping[str, tuple[Override, ...]]


def calendar_spec(name: str, cfg: CalendarSettings) -> CalendarSpec:
    """The :class:`CalendarSpec` of ``[calendars.<name>]``."""

    def wall(text: str) -> dt.time:
        return dt.time(0, 0) if text == "24:00" else dt.time.fromisoformat(text)

    day_length = None
    if cfg.day_length:
        rest, days = parse_duration(cfg.day_length)
        day_length = rest + dt.timedelta(days=days)
    return CalendarSpec(
        name=name,
        timezone=cfg.timezone,
        working_days=frozenset(WEEKDAY_NUMBERS[day] for day in cfg.working_days),
        hours=tuple((wall(p[:5]), wall(p[6:])) for p in cfg.hours),
        country=cfg.country or None,
        subdivision=cfg.subdivision or None,
        extra_holidays={dt.date.fromisoformat(d): n for d, n in cfg.extra_holidays.items()},
        extra_workdays={dt.date.fromisoformat(d): n for d, n in cfg.extra_workdays.items()},
        day_length=day_length,
    )


def load_overrides(conn: Connection) -> dict[str, tuple[Override, ...]]:
    """Run-time overrides per calendar name, oldest first."""
    table = calendar_override_table
    found: dict[str, list[Override]] = defaultdict(list)
    for row in conn.execute(select(table).order_by(table.c.id)):
        found[row.calendar].append(Override(row.day, row.kind, row.name))
    return {name: tuple(items) for name, items in found.items()}


@dataclass(frozen=True)
class SlaContext:
    """Everything needed to compute a ticket's deadlines."""

    settings: Settings
    calendars: Mapping[str, WorkingCalendar]
    policies: Mapping[str, PriorityPolicy]
    triage: Target
    auto_close: Target
    overrides: OverrideRows

    def calendar_name_for(self, team: str | None) -> str:
        """The team's calendar if it names one, else ``sla.calendar``."""
        team_cfg = self.settings.teams.get(team or "")
        if team_cfg is not None and team_cfg.calendar:
            return team_cfg.calendar
        return self.settings.sla.calendar

    def calendar_for(self, team: str | None) -> WorkingCalendar:
        return self.calendars[self.calendar_name_for(team)]


def build_context(settings: Settings, overrides: OverrideRows) -> SlaContext:
    sla = settings.sla
    policies = {
        priority: PriorityPolicy(
            response=Target(cfg.response, cfg.response_clock),
            resolution=Target(cfg.resolution, cfg.resolution_clock),
        )
        for priority, cfg in (("P1", sla.P1), ("P2", sla.P2), ("P3", sla.P3), ("P4", sla.P4))
    }
    calendars = {
        name: WorkingCalendar(calendar_spec(name, cfg), overrides.get(name, ()))
        for name, cfg in settings.calendars.items()
    }
    return SlaContext(
        settings=settings,
        calendars=calendars,
        policies=policies,
        triage=Target(settings.triage.within, settings.triage.clock),
        auto_close=Target(settings.lifecycle.auto_close_after, settings.lifecycle.auto_close_clock),
        overrides=overrides,
    )


_cached: list[SlaContext] = []


def current_context(conn: Connection, settings: Settings) -> SlaContext:
    """The context for ``settings`` with the overrides as ``conn`` sees them; the calendars (whose
    holiday tables take a while to build) are reused while neither changes."""
    overrides = load_overrides(conn)
    if _cached and _cached[0].settings is settings and _cached[0].overrides == overrides:
        return _cached[0]
    ctx = build_context(settings, overrides)
    _cached[:] = [ctx]
    return ctx


def warm_up(engine: Engine, settings: Settings) -> None:
    """Build the calendars and load this year's holidays now, not in the first ticket's transaction."""
    with read_only(engine).connect() as conn:
        ctx = current_context(conn, settings)
    now = dt.datetime.now(dt.UTC)
    for calendar in ctx.calendars.values():
        calendar.add_working_time(now, dt.timedelta(hours=1))


def load_context(engine: Engine, settings: Settings) -> SlaContext:
    """The context with the database's current overrides."""
    with read_only(engine).connect() as conn:
        return build_context(settings, load_overrides(conn))
