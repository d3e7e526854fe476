"""Working calendars: which days and hours count on an SLA's working clock, and arithmetic on that clock.

A :class:`CalendarSpec` says, in wall-clock terms, when people work: the working weekdays, the
working hours of a day, a time zone, public holidays (from the ``holidays`` package) and the
company's own extra holidays and make-up working days (補班). A :class:`WorkingCalendar` adds
run-time :class:`Override` s (a typhoon day, say) and answers two questions fast:

- ``add_working_time(start, amount)``: the earliest instant by which ``amount`` of working time
  has passed since ``start`` (an SLA deadline);
- ``working_time_between(start, end)``: how much working time lies between two instants.

Precedence for a date: run-time override (the last one given wins) > the spec's extra workdays
and extra holidays > public holidays > the weekday rule.

How it is fast and exact: each local calendar year is turned, once, into its working intervals
as integer microseconds since the epoch (each day's wall-clock hours made into instants with
zoneinfo, ``fold=0`` for times that do not exist or happen twice). Consecutive years are joined
into a :class:`_Timeline` that also holds the running total of working time at each interval
boundary, so "working time up to instant t" and its inverse are each one binary search; no
datetime is made until the answer. Integer microseconds keep
``working_time_between(s, add_working_time(s, a)) == a`` exact.
"""

from __future__ import annotations

import datetime as dt
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from zoneinfo import ZoneInfo

import holidays

from intaked.sla.calendar_spec import MIDNIGHT, CalendarSpec, Override

__all__ = ["CalendarSpec", "Override", "WorkingCalendar"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_ONE_DAY = dt.timedelta(days=1)
_FIRST_YEAR, _LAST_YEAR = 2, 9998  # keep a year's neighbours inside what datetime can represent
_MAX_EMPTY_YEARS = 10  # give up looking for working time after this many years without any
_NEAR_YEARS = 3  # a timeline is widened to reach an instant this close; otherwise rebuilt around it
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class _PublicYear:
    """One year of a country's public calendar: days off, and weekend days made working days."""

    days_off: Mapping[dt.date, str]
    workdays: frozenset[dt.date]


@dataclass(frozen=True)
class _Timeline:
    """The working intervals of the local years ``first_year``..``last_year``, in integer
    microseconds since the epoch, with the working time accumulated at each boundary.

    ``bounds`` is start0, end0, start1, end1, ... (never decreasing); ``before[k]`` is the working
    time from ``begin`` to the start of interval k (one more entry: the total); ``through[k]``
    the working time up to the end of interval k.
    """

    first_year: int
    last_year: int
    begin: int
    end: int
    bounds: list[int]
    before: list[int]
    through: list[int]

    @property
    def total(self) -> int:
        return self.before[-1]

    def covers(self, instant: int) -> bool:
        return self.begin <= instant < self.end

    def worked(self, instant: int) -> int:
        """Working time from ``begin`` up to ``instant``."""
        position = bisect_right(self.bounds, instant)
        if position & 1:  # inside interval position // 2
            return self.before[position >> 1] + instant - self.bounds[position - 1]
        return self.before[position >> 1]

    def instant(self, worked: int) -> int:
        """The earliest instant at which ``worked`` (0 < worked <= total) has been worked."""
        interval = bisect_left(self.through, worked)
        return self.bounds[2 * interval + 1] - (self.through[interval] - worked)


def _micros(instant: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    try:
        return (instant - _EPOCH) // _MICROSECOND
    except TypeError:
        raise ValueError(f"{instant!r} has no time zone: working time needs aware datetimes") from None


class WorkingCalendar:
    """A working calendar (a spec plus run-time overrides) and arithmetic on its working clock.

    Safe to share between threads: the computed years are kept in an immutable timeline that is
    replaced, never changed, when more years are needed.
    """

    def __init__(self, spec: CalendarSpec, overrides: Iterable[Override] = ()) -> None:
        self.spec = spec
        self.name = spec.name
        self.tz = ZoneInfo(spec.timezone)
        self.standard_day = spec.day_length if spec.day_length is not None else spec.hours_per_day
        self._overrides = {override.day: override for override in overrides}  # the last given wins
        self._language = self._holiday_language()
        self._public_years: dict[int, _PublicYear] = {}
        self._year_intervals: dict[int, list[tuple[int, int]]] = {}
        self._timeline: _Timeline | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WorkingCalendar({self.name!r}, {self.spec.timezone}, {len(self._overrides)} overrides)"

    # -- days ---------------------------------------------------------------------------------

    def day_status(self, day: dt.date) -> tuple[bool, str]:
        """Whether ``day`` is a working day, and why (a holiday's name, "weekend", ...)."""
        if (override := self._overrides.get(day)) is not None:
            if override.kind == "holiday":
                return False, override.name
            return True, self._workday_reason(day, override.name)
        if (name := self.spec.extra_workdays.get(day)) is not None:
            return True, self._workday_reason(day, name)
        if (name := self.spec.extra_holidays.get(day)) is not None:
            return False, name
        public = self._public_year(day.year)
        if (name := public.days_off.get(day)) is not None:
            return False, name
        if day in public.workdays:
            return True, self._workday_reason(day, f"{self.spec.country} public work calendar")
        if day.weekday() in self.spec.working_days:
            return True, "working day"
        return False, "weekend" if day.weekday() >= 5 else f"no work on {_WEEKDAY_NAMES[day.weekday()]}s"

    def is_working_day(self, day: dt.date) -> bool:
        return self.day_status(day)[0]

    def non_working_days(self, year: int) -> list[tuple[dt.date, str]]:
        """Dates of ``year`` that the weekday rule makes working days but are not (holidays), sorted."""
        return [
            (day, reason)
            for day in _days_of(year)
            if day.weekday() in self.spec.working_days
            for working, reason in [self.day_status(day)]
            if not working
        ]

    def extra_working_days(self, year: int) -> list[tuple[dt.date, str]]:
        """Dates of ``year`` that are working days although their weekday is not, sorted."""
        return [
            (day, reason)
            for day in _days_of(year)
            if day.weekday() not in self.spec.working_days
            for working, reason in [self.day_status(day)]
            if working
        ]

    def _workday_reason(self, day: dt.date, name: str) -> str:
        if day.weekday() in self.spec.working_days:
            return f"working day: {name}"
        return f"make-up working day: {name}"

    # -- public holidays ----------------------------------------------------------------------

    def _holiday_language(self) -> str | None:
        """English holiday names when the country has them (the default depends on the locale)."""
        if self.spec.country is None:
            return None
        try:
            entity = holidays.country_holidays(self.spec.country, subdiv=self.spec.subdivision, years=())
        except NotImplementedError as exc:
            raise ValueError(f"calendar {self.name!r}: no public holidays for it: {exc}") from None
        english = [lang for lang in entity.supported_languages if lang.startswith("en")]
        return "en_US" if "en_US" in english else next(iter(english), None)

    def _public_year(self, year: int) -> _PublicYear:
        public = self._public_years.get(year)
        if public is None:
            public = self._public_years[year] = self._load_public_year(year)
        return public

    def _load_public_year(self, year: int) -> _PublicYear:
        if self.spec.country is None:
            return _PublicYear(MappingProxyType({}), frozenset())
        # The next year too: its observed days and substitutions can fall in this one (a holiday
        # on 1 January observed on 31 December, a make-up Saturday in late December).
        table = holidays.country_holidays(
            self.spec.country, subdiv=self.spec.subdivision, years=(year, year + 1), language=self._language
        )
        days_off = {day: name for day, name in table.items() if day.year == year}
        # Make-up working days (補班) are the weekend days the package moved a day off from. Its
        # WORKDAY category is something else: for TW it lists commemorative days that are not days
        # off (Women's Day on a Sunday, Taoism Day on Lunar New Year's Day), so it is not used.
        workdays = frozenset(day for day in table.weekend_workdays if day.year == year)
        return _PublicYear(MappingProxyType(days_off), workdays)

    # -- the working clock --------------------------------------------------------------------

    def is_working_time(self, instant: dt.datetime) -> bool:
        """Whether ``instant`` lies in a working period (which includes its start, not its end)."""
        moment = _micros(instant)
        timeline = self._timeline_covering(moment, moment)
        return bool(bisect_right(timeline.bounds, moment) & 1)

    def add_working_time(self, start: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        """The earliest instant at which ``amount`` of working time has passed since ``start``,
        in the calendar's time zone; ``start`` itself when ``amount`` is zero."""
        origin = _micros(start)
        length = amount // _MICROSECOND
        if length <= 0:
            if length < 0:
                raise ValueError(f"cannot add a negative working time ({amount})")
            return start
        timeline = self._timeline_covering(origin, origin)
        target = timeline.worked(origin) + length
        while target > timeline.total:
            timeline = self._extended(timeline)
        return (_EPOCH + dt.timedelta(microseconds=timeline.instant(target))).astimezone(self.tz)

    def working_time_between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time from ``start`` to ``end``; zero when ``end`` is not after ``start``."""
        first, last = _micros(start), _micros(end)
        if last <= first:
            return dt.timedelta(0)
        timeline = self._timeline_covering(first, last)
        return dt.timedelta(microseconds=timeline.worked(last) - timeline.worked(first))

    # -- timelines ----------------------------------------------------------------------------

    def _timeline_covering(self, first: int, last: int) -> _Timeline:
        """A timeline whose years hold the instants ``first`` to ``last`` (microseconds)."""
        timeline = self._timeline
        if timeline is not None and timeline.covers(first) and timeline.covers(last):
            return timeline
        first_year, last_year = self._local_year(first), self._local_year(last)
        if timeline is not None and (
            first_year <= timeline.last_year + _NEAR_YEARS and last_year >= timeline.first_year - _NEAR_YEARS
        ):
            first_year = min(first_year, timeline.first_year)
            last_year = max(last_year, timeline.last_year)
        return self._install(first_year, last_year)

    def _extended(self, timeline: _Timeline) -> _Timeline:
        """``timeline`` with more years after it, enough to add some working time."""
        last_year = timeline.last_year
        while last_year - timeline.last_year < _MAX_EMPTY_YEARS:
            last_year += 1
            if self._intervals_of_year(last_year):
                return self._install(timeline.first_year, last_year)
        raise ValueError(
            f"calendar {self.name!r} has no working time in {timeline.last_year + 1}-{last_year}"
        )

    def _install(self, first_year: int, last_year: int) -> _Timeline:
        with self._lock:
            timeline = self._build_timeline(first_year, last_year)
            self._timeline = timeline
            return timeline

    def _build_timeline(self, first_year: int, last_year: int) -> _Timeline:
        bounds: list[int] = []
        before: list[int] = []
        through: list[int] = []
        worked = 0
        for year in range(first_year, last_year + 1):
            for start, end in self._intervals_of_year(year):
                start = max(start, bounds[-1]) if bounds else start  # keep intervals in order
                if end <= start:
                    continue
                bounds += (start, end)
                before.append(worked)
                worked += end - start
                through.append(worked)
        before.append(worked)
        return _Timeline(
            first_year,
            last_year,
            begin=self._local_midnight(dt.date(first_year, 1, 1)),
            end=self._local_midnight(dt.date(last_year + 1, 1, 1)),
            bounds=bounds,
            before=before,
            through=through,
        )

    def _intervals_of_year(self, year: int) -> list[tuple[int, int]]:
        intervals = self._year_intervals.get(year)
        if intervals is None:
            if not _FIRST_YEAR <= year <= _LAST_YEAR:
                raise ValueError(f"calendar {self.name!r}: year {year} is out of range")
            intervals = [
                interval
                for day in _days_of(year)
                if self.is_working_day(day)
                for interval in self._intervals_of_day(day)
            ]
            self._year_intervals[year] = intervals
        return intervals

    def _intervals_of_day(self, day: dt.date) -> Iterator[tuple[int, int]]:
        for start, end in self.spec.hours:
            begin = _micros(dt.datetime.combine(day, start, tzinfo=self.tz))
            if end == MIDNIGHT:
                yield begin, self._local_midnight(day + _ONE_DAY)
            else:
                yield begin, _micros(dt.datetime.combine(day, end, tzinfo=self.tz))

    def _local_midnight(self, day: dt.date) -> int:
        return _micros(dt.datetime.combine(day, MIDNIGHT, tzinfo=self.tz))

    def _local_year(self, instant: int) -> int:
        try:
            return (_EPOCH + dt.timedelta(microseconds=instant)).astimezone(self.tz).year
        except OverflowError:
            raise ValueError(f"calendar {self.name!r}: instant out of range") from None


def _days_of(year: int) -> Iterator[dt.date]:
    first = dt.date(year, 1, 1)
    for offset in range((dt.date(year, 12, 31) - first).days + 1):
        yield first + dt.timedelta(days=offset)
