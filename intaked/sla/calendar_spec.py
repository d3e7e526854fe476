"""A working calendar's configuration, checked: the working weekdays and hours, the time zone,
public and extra holidays, make-up workdays (:class:`CalendarSpec`), and the run-time
:class:`Override` of one date. The arithmetic on the working clock is in ``calendar.py``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MIDNIGHT = dt.time(0)
_ONE_DAY = dt.timedelta(days=1)
_DEFAULT_HOURS = ((dt.time(8, 30), dt.time(12, 0)), (dt.time(13, 0), dt.time(17, 30)))


def _frozen(days: Mapping[dt.date, str]) -> Mapping[dt.date, str]:
    return MappingProxyType(dict(days))


def _no_days() -> Mapping[dt.date, str]:
    return MappingProxyType({})


def _period_length(start: dt.time, end: dt.time) -> dt.timedelta:
    """Length of a working period on a day without clock changes; an end of 00:00 means midnight."""
    day = dt.date(2000, 1, 1)
    finish = dt.datetime.combine(day + _ONE_DAY if end == MIDNIGHT else day, end)
    return finish - dt.datetime.combine(day, start)


@dataclass(frozen=True)
class CalendarSpec:
    """When people work, in wall-clock terms: the configuration of one working calendar.

    ``hours`` are (start, end) wall-clock periods, sorted and not overlapping; an end of 00:00
    means midnight at the end of the day. ``day_length`` is what "one working day" of an SLA
    target means; None means the sum of ``hours``.
    """

    name: str = "default"
    timezone: str = "Asia/Taipei"
    working_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    hours: tuple[tuple[dt.time, dt.time], ...] = _DEFAULT_HOURS
    country: str | None = "TW"
    subdivision: str | None = None
    extra_holidays: Mapping[dt.date, str] = field(default_factory=_no_days, hash=False)
    extra_workdays: Mapping[dt.date, str] = field(default_factory=_no_days, hash=False)
    day_length: dt.timedelta | None = None

    def __post_init__(self) -> None:
        # Copies, so that a dict or list the caller keeps cannot change a frozen spec.
        object.__setattr__(self, "working_days", frozenset(self.working_days))
        object.__setattr__(self, "hours", tuple((start, end) for start, end in self.hours))
        object.__setattr__(self, "extra_holidays", _frozen(self.extra_holidays))
        object.__setattr__(self, "extra_workdays", _frozen(self.extra_workdays))
        self._check()

    def _check(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"calendar {self.name!r}: unknown time zone {self.timezone!r}") from exc
        if not self.working_days <= set(range(7)):
            raise ValueError(f"calendar {self.name!r}: working days are 0 (Monday) to 6 (Sunday)")
        self._check_hours()
        if self.day_length is not None and self.day_length <= dt.timedelta(0):
            raise ValueError(f"calendar {self.name!r}: day_length must be positive")
        if both := sorted(set(self.extra_holidays) & set(self.extra_workdays)):
            raise ValueError(
                f"calendar {self.name!r}: {both[0]} is both an extra holiday and an extra workday"
            )

    def _check_hours(self) -> None:
        previous_end: dt.time | None = None
        for start, end in self.hours:
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError(
                    f"calendar {self.name!r}: working hours are wall-clock times, without tzinfo"
                )
            if previous_end == MIDNIGHT or (previous_end is not None and start < previous_end):
                raise ValueError(f"calendar {self.name!r}: working hours must be sorted and not overlap")
            if end != MIDNIGHT and end <= start:
                raise ValueError(
                    f"calendar {self.name!r}: working period {start}-{end} ends before it starts"
                )
            previous_end = end

    @property
    def hours_per_day(self) -> dt.timedelta:
        """The sum of the working periods of one (ordinary) working day."""
        return sum((_period_length(start, end) for start, end in self.hours), dt.timedelta(0))


@dataclass(frozen=True)
class Override:
    """A run-time change to one date: a holiday (typhoon day) or a working day."""

    day: dt.date
    kind: Literal["holiday", "workday"]
    name: str

    def __post_init__(self) -> None:
        if self.kind not in ("holiday", "workday"):
            raise ValueError(
                f"override for {self.day}: kind must be 'holiday' or 'workday', not {self.kind!r}"
            )
