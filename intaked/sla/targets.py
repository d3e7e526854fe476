"""SLA targets: durations as configured ("4h", "3 working days"), the clock they run on, and the
deadlines and elapsed times they give on a working calendar; the company's default priority table.

A duration's days are kept apart from its hours and minutes because what a day is depends on the
clock: 24 hours on the 24x7 clock, one standard working day (8 h by default) on the working clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from intaked.config.durations import parse_duration as parse_duration  # re-exported for the SLA code
from intaked.sla.calendar import WorkingCalendar

Clock = Literal["24x7", "working"]
CLOCKS: tuple[Clock, ...] = ("24x7", "working")

_UTC = dt.UTC
_DAY = dt.timedelta(days=1)


def wall_time(duration: str) -> dt.timedelta:
    """A configured duration as plain elapsed time (days count as 24 hours): for timers and
    windows that do not follow a working calendar."""
    rest, days = parse_duration(duration)
    return rest + dt.timedelta(days=days)


def _require_aware(instant: dt.datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{instant!r} has no time zone: SLA clocks need aware datetimes")


@dataclass(frozen=True)
class Target:
    """One SLA target: a duration as configured (e.g. "3d") on a clock ("24x7" or "working")."""

    text: str
    clock: Clock
    _rest: dt.timedelta = field(init=False, repr=False, compare=False)
    _days: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise ValueError(f"target {self.text!r}: the clock is '24x7' or 'working', not {self.clock!r}")
        rest, days = parse_duration(self.text)
        if self.clock == "24x7" and re.search(r"working|business", self.text, re.IGNORECASE):
            raise ValueError(f"target {self.text!r} counts working time but its clock is 24x7")
        object.__setattr__(self, "_rest", rest)
        object.__setattr__(self, "_days", days)

    def length(self, calendar: WorkingCalendar) -> dt.timedelta:
        """The target's length on its clock: days are standard working days or 24 hours."""
        day = calendar.standard_day if self.clock == "working" else _DAY
        return self._days * day + self._rest

    def deadline(
        self, calendar: WorkingCalendar, start: dt.datetime, extra: dt.timedelta = dt.timedelta(0)
    ) -> dt.datetime:
        """When the target is due for something that started at ``start``, with ``extra`` time
        (e.g. time on hold) added on the same clock; in the calendar's time zone."""
        amount = self.length(calendar) + extra
        if self.clock == "working":
            return calendar.add_working_time(start, amount)
        if amount < dt.timedelta(0):
            raise ValueError(f"target {self.text!r}: {extra} of extra time leaves a negative length")
        _require_aware(start)
        # In UTC: adding to a datetime with a zone adds wall-clock time, wrong across DST changes.
        return (start.astimezone(_UTC) + amount).astimezone(calendar.tz)

    def elapsed(self, calendar: WorkingCalendar, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Time counted on this target's clock from ``start`` to ``end`` (zero if ``end`` is earlier)."""
        if self.clock == "working":
            return calendar.working_time_between(start, end)
        _require_aware(start)
        _require_aware(end)
        return max(end.astimezone(_UTC) - start.astimezone(_UTC), dt.timedelta(0))


@dataclass(frozen=True)
class PriorityPolicy:
    """The two targets of a priority: first response and resolution."""

    response: Target
    resolution: Target


# From the company's incident process.
DEFAULT_POLICIES: Mapping[str, PriorityPolicy] = MappingProxyType(
    {
        "P1": PriorityPolicy(response=Target("15m", "24x7"), resolution=Target("4h", "24x7")),
        "P2": PriorityPolicy(response=Target("1h", "24x7"), resolution=Target("8h", "working")),
        "P3": PriorityPolicy(response=Target("4h", "working"), resolution=Target("3d", "working")),
        "P4": PriorityPolicy(response=Target("8h", "working"), resolution=Target("5d", "working")),
    }
)
