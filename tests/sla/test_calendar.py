"""Working calendars: holidays and overrides, deadlines on the working clock, DST, and the
properties every deadline computation keeps (inverse, monotonic, additive)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intaked.sla.calendar import CalendarSpec, Override, WorkingCalendar

TAIPEI = dt.timezone(dt.timedelta(hours=8))
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
MICROSECOND = dt.timedelta(microseconds=1)

DEFAULT = WorkingCalendar(CalendarSpec())
CHICAGO = WorkingCalendar(
    CalendarSpec(name="chicago", timezone="America/Chicago", hours=((dt.time(9), dt.time(17)),), country=None)
)

# Hours 01:00-05:00 every day: they straddle Chicago's clock changes (at 02:00).
NIGHT = WorkingCalendar(
    CalendarSpec(
        name="night",
        timezone="America/Chicago",
        working_days=frozenset(range(7)),
        hours=((dt.time(1), dt.time(5)),),
        country=None,
    )
)


def taipei(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=TAIPEI)


def chicago(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=CHICAGO.tz)


# -- the worked example and the shape of a working day ------------------------------------------


def test_worked_example_over_constitution_day() -> None:
    start = taipei(2026, 12, 24, 16, 0)  # Thursday; Friday 25 December is Constitution Day
    assert DEFAULT.add_working_time(start, 4 * HOUR) == taipei(2026, 12, 28, 11, 0)
    assert DEFAULT.add_working_time(start, 24 * HOUR) == taipei(2026, 12, 30, 16, 0)


def test_result_is_in_the_calendar_time_zone() -> None:
    start = dt.datetime(2026, 12, 24, 8, 0, tzinfo=dt.UTC)  # 16:00 in Taipei
    deadline = DEFAULT.add_working_time(start, 4 * HOUR)
    assert deadline.tzinfo is DEFAULT.tz
    assert (deadline.year, deadline.month, deadline.day, deadline.hour) == (2026, 12, 28, 11)
    assert deadline.utcoffset() == dt.timedelta(hours=8)


def test_lunch_break_does_not_count() -> None:
    assert DEFAULT.add_working_time(taipei(2026, 3, 10, 11, 30), HOUR) == taipei(2026, 3, 10, 13, 30)
    assert DEFAULT.working_time_between(taipei(2026, 3, 10, 11, 0), taipei(2026, 3, 10, 14, 0)) == 2 * HOUR


def test_ends_exactly_at_end_of_day_not_next_morning() -> None:
    assert DEFAULT.add_working_time(taipei(2026, 3, 10, 16, 30), HOUR) == taipei(2026, 3, 10, 17, 30)
    assert DEFAULT.add_working_time(taipei(2026, 3, 10, 11, 0), HOUR) == taipei(2026, 3, 10, 12, 0)
    assert DEFAULT.add_working_time(taipei(2026, 3, 10, 8, 30), 8 * HOUR) == taipei(2026, 3, 10, 17, 30)


def test_start_outside_working_hours() -> None:
    before_hours = taipei(2026, 3, 10, 6, 0)
    assert DEFAULT.add_working_time(before_hours, HOUR) == taipei(2026, 3, 10, 9, 30)
    after_hours = taipei(2026, 3, 10, 20, 0)
    assert DEFAULT.add_working_time(after_hours, HOUR) == taipei(2026, 3, 11, 9, 30)
    saturday = taipei(2026, 3, 14, 10, 0)
    assert DEFAULT.add_working_time(saturday, HOUR) == taipei(2026, 3, 16, 9, 30)
    national_day = taipei(2026, 10, 9, 10, 0)  # Friday, observed
    assert DEFAULT.add_working_time(national_day, HOUR) == taipei(2026, 10, 12, 9, 30)
    assert DEFAULT.working_time_between(saturday, taipei(2026, 3, 15, 23, 0)) == dt.timedelta(0)


def test_zero_amount_returns_start_even_outside_hours() -> None:
    saturday = taipei(2026, 3, 14, 10, 0)
    assert DEFAULT.add_working_time(saturday, dt.timedelta(0)) is saturday


def test_working_time_between_is_zero_backwards() -> None:
    assert DEFAULT.working_time_between(
        taipei(2026, 3, 11, 10, 0), taipei(2026, 3, 10, 10, 0)
    ) == dt.timedelta(0)


def test_is_working_time_includes_start_excludes_end() -> None:
    assert DEFAULT.is_working_time(taipei(2026, 3, 10, 8, 30))
    assert not DEFAULT.is_working_time(taipei(2026, 3, 10, 12, 0))
    assert DEFAULT.is_working_time(taipei(2026, 3, 10, 17, 29, 59))
    assert not DEFAULT.is_working_time(taipei(2026, 3, 10, 17, 30))
    assert not DEFAULT.is_working_time(taipei(2026, 3, 14, 10, 0))


def test_naive_datetimes_are_refused() -> None:
    naive = dt.datetime(2026, 3, 10, 10, 0)
    with pytest.raises(ValueError, match="no time zone"):
        DEFAULT.add_working_time(naive, HOUR)
    with pytest.raises(ValueError, match="no time zone"):
        DEFAULT.working_time_between(naive, taipei(2026, 3, 11, 10, 0))
    with pytest.raises(ValueError, match="no time zone"):
        DEFAULT.is_working_time(naive)


def test_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        DEFAULT.add_working_time(taipei(2026, 3, 10, 10, 0), -HOUR)


def test_standard_day() -> None:
    assert DEFAULT.standard_day == 8 * HOUR
    assert WorkingCalendar(CalendarSpec(day_length=7 * HOUR)).standard_day == 7 * HOUR


# -- Taiwan's public calendar -------------------------------------------------------------------

TAIWAN_2026 = {
    dt.date(2026, 2, 16): "Chinese New Year's Eve",
    dt.date(2026, 2, 17): "Chinese New Year",
    dt.date(2026, 2, 18): "Chinese New Year",
    dt.date(2026, 2, 19): "Chinese New Year",
    dt.date(2026, 2, 20): "Chinese New Year's Eve (observed)",
    dt.date(2026, 2, 27): "Peace Memorial Day (observed)",
    dt.date(2026, 4, 3): "Children's Day (observed)",
    dt.date(2026, 4, 6): "Tomb-Sweeping Day (observed)",
    dt.date(2026, 10, 9): "National Day (observed)",
    dt.date(2026, 12, 25): "Constitution Day",
}


@pytest.mark.parametrize("day", sorted(TAIWAN_2026))
def test_taiwan_2026_holidays_are_not_working_days(day: dt.date) -> None:
    assert day.weekday() < 5
    assert DEFAULT.day_status(day) == (False, TAIWAN_2026[day])
    assert not DEFAULT.is_working_day(day)


def test_non_working_days_of_2026_list_the_holidays_by_name() -> None:
    listed = DEFAULT.non_working_days(2026)
    assert listed == sorted(listed)
    assert set(TAIWAN_2026.items()) <= set(listed)
    assert all(day.weekday() < 5 and day.year == 2026 for day, _ in listed)
    # Weekend holidays are weekends anyway: Peace Memorial Day itself is a Saturday.
    assert dt.date(2026, 2, 28) not in dict(listed)


def test_ordinary_days() -> None:
    assert DEFAULT.day_status(dt.date(2026, 3, 10)) == (True, "working day")
    assert DEFAULT.day_status(dt.date(2026, 3, 14)) == (False, "weekend")


def test_commemorative_days_that_are_not_days_off_stay_ordinary() -> None:
    # The holidays package lists these in its WORKDAY category: they are not make-up working days.
    assert DEFAULT.day_status(dt.date(2026, 3, 8)) == (False, "weekend")  # Women's Day, a Sunday
    assert DEFAULT.is_working_day(dt.date(2026, 3, 12))  # Arbor Day, a Thursday
    assert DEFAULT.extra_working_days(2026) == []


def test_public_make_up_saturday() -> None:
    # 2025-01-27 was a day off in exchange for working Saturday 2025-02-08.
    assert not DEFAULT.is_working_day(dt.date(2025, 1, 27))
    assert DEFAULT.extra_working_days(2025) == [
        (dt.date(2025, 2, 8), "make-up working day: TW public work calendar")
    ]
    assert DEFAULT.add_working_time(taipei(2025, 2, 7, 17, 0), HOUR) == taipei(2025, 2, 8, 9, 0)


def test_no_country_means_no_public_holidays() -> None:
    plain = WorkingCalendar(CalendarSpec(country=None))
    assert plain.is_working_day(dt.date(2026, 12, 25))
    assert plain.non_working_days(2026) == []


def test_unknown_country_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no public holidays"):
        WorkingCalendar(CalendarSpec(country="XX"))


# -- the company's own days and run-time overrides ----------------------------------------------


def test_typhoon_day_pushes_a_deadline_by_a_day() -> None:
    typhoon = {dt.date(2026, 9, 15): "typhoon day"}
    calendar = WorkingCalendar(CalendarSpec(extra_holidays=typhoon))
    start = taipei(2026, 9, 14, 10, 0)  # Monday
    assert DEFAULT.add_working_time(start, 8 * HOUR) == taipei(2026, 9, 15, 10, 0)
    assert calendar.add_working_time(start, 8 * HOUR) == taipei(2026, 9, 16, 10, 0)
    assert calendar.day_status(dt.date(2026, 9, 15)) == (False, "typhoon day")
    assert (dt.date(2026, 9, 15), "typhoon day") in calendar.non_working_days(2026)


def test_make_up_saturday_pulls_a_deadline_in() -> None:
    saturday = dt.date(2026, 9, 19)
    calendar = WorkingCalendar(CalendarSpec(extra_workdays={saturday: "補班 for 2026-09-25"}))
    start = taipei(2026, 9, 18, 16, 0)  # Friday
    assert DEFAULT.add_working_time(start, 4 * HOUR) == taipei(2026, 9, 21, 11, 0)
    assert calendar.add_working_time(start, 4 * HOUR) == taipei(2026, 9, 19, 11, 0)
    assert calendar.extra_working_days(2026) == [(saturday, "make-up working day: 補班 for 2026-09-25")]


def test_extra_workday_cancels_a_public_holiday() -> None:
    calendar = WorkingCalendar(CalendarSpec(extra_workdays={dt.date(2026, 5, 1): "we work on Labor Day"}))
    assert calendar.day_status(dt.date(2026, 5, 1)) == (True, "working day: we work on Labor Day")


def test_run_time_override_beats_the_spec_and_the_last_one_wins() -> None:
    day = dt.date(2026, 9, 15)
    spec = CalendarSpec(extra_holidays={day: "typhoon day (forecast)"})
    reopened = WorkingCalendar(spec, [Override(day, "workday", "typhoon missed us")])
    assert reopened.day_status(day) == (True, "working day: typhoon missed us")
    start = taipei(2026, 9, 14, 10, 0)
    assert reopened.add_working_time(start, 8 * HOUR) == taipei(2026, 9, 15, 10, 0)
    flip_flop = WorkingCalendar(
        CalendarSpec(),
        [Override(day, "workday", "open"), Override(day, "holiday", "closed after all")],
    )
    assert flip_flop.day_status(day) == (False, "closed after all")


def test_override_turns_a_public_holiday_into_a_working_day() -> None:
    christmas = dt.date(2026, 12, 25)
    calendar = WorkingCalendar(CalendarSpec(), [Override(christmas, "workday", "year-end close")])
    assert calendar.add_working_time(taipei(2026, 12, 24, 16, 0), 4 * HOUR) == taipei(2026, 12, 25, 11, 0)


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        CalendarSpec(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="overlap"):
        CalendarSpec(hours=((dt.time(9), dt.time(13)), (dt.time(12), dt.time(17))))
    with pytest.raises(ValueError, match="ends before"):
        CalendarSpec(hours=((dt.time(17), dt.time(9)),))
    with pytest.raises(ValueError, match="both"):
        day = dt.date(2026, 1, 2)
        CalendarSpec(extra_holidays={day: "a"}, extra_workdays={day: "b"})
    with pytest.raises(ValueError, match="kind"):
        Override(dt.date(2026, 1, 2), "vacation", "x")  # type: ignore[arg-type]


def test_spec_is_not_changed_by_the_dict_it_was_given() -> None:
    extra = {dt.date(2026, 9, 15): "typhoon day"}
    spec = CalendarSpec(extra_holidays=extra)
    extra[dt.date(2026, 9, 16)] = "second typhoon day"
    assert list(spec.extra_holidays) == [dt.date(2026, 9, 15)]
    assert hash(spec) == hash(CalendarSpec(extra_holidays={dt.date(2026, 9, 15): "typhoon day"}))


def test_calendar_without_working_time_says_so() -> None:
    never = WorkingCalendar(CalendarSpec(working_days=frozenset(), country=None))
    with pytest.raises(ValueError, match="no working time"):
        never.add_working_time(taipei(2026, 1, 5, 10, 0), HOUR)


def test_round_the_clock_calendar_up_to_midnight() -> None:
    always = WorkingCalendar(
        CalendarSpec(hours=((dt.time(0), dt.time(0)),), working_days=frozenset(range(7)), country=None)
    )
    assert always.standard_day == 24 * HOUR
    start = taipei(2026, 3, 10, 22, 0)
    assert always.add_working_time(start, 3 * HOUR) == start + 3 * HOUR
    assert always.working_time_between(start, start + 50 * HOUR) == 50 * HOUR


# -- daylight saving time -----------------------------------------------------------------------


def test_dst_spring_forward_weekend() -> None:
    start = chicago(2026, 3, 6, 16, 0)  # Friday, CST
    deadline = CHICAGO.add_working_time(start, 2 * HOUR)
    assert deadline.replace(tzinfo=None) == dt.datetime(2026, 3, 9, 10, 0)
    assert start.utcoffset() == dt.timedelta(hours=-6)
    assert deadline.utcoffset() == dt.timedelta(hours=-5)
    assert CHICAGO.working_time_between(start, deadline) == 2 * HOUR


def test_dst_fall_back_weekend() -> None:
    start = chicago(2026, 10, 30, 16, 0)  # Friday, CDT
    deadline = CHICAGO.add_working_time(start, 2 * HOUR)
    assert deadline.replace(tzinfo=None) == dt.datetime(2026, 11, 2, 10, 0)
    assert start.utcoffset() == dt.timedelta(hours=-5)
    assert deadline.utcoffset() == dt.timedelta(hours=-6)


def test_dst_working_hours_are_wall_clock_hours_of_the_day() -> None:
    # 01:00-05:00 is 3 real hours on the spring-forward day, 5 on the fall-back day (01:00
    # happens twice then: the period starts at the first one, fold=0).
    night = NIGHT
    spring, autumn, ordinary = dt.date(2026, 3, 8), dt.date(2026, 11, 1), dt.date(2026, 6, 1)

    def worked_on(day: dt.date) -> dt.timedelta:
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=night.tz)
        return night.working_time_between(midnight, midnight + 24 * HOUR)

    assert worked_on(spring) == 3 * HOUR
    assert worked_on(autumn) == 5 * HOUR
    assert worked_on(ordinary) == 4 * HOUR
    deadline = night.add_working_time(dt.datetime(2026, 11, 1, 0, 0, tzinfo=night.tz), 4 * HOUR + 30 * MINUTE)
    assert (deadline.hour, deadline.minute, deadline.utcoffset()) == (4, 30, dt.timedelta(hours=-6))


# -- properties ---------------------------------------------------------------------------------

CALENDARS = st.sampled_from([DEFAULT, CHICAGO, NIGHT])
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
STARTS = st.datetimes(
    min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31, 23, 59, 59), timezones=OFFSETS
)
TEN_DAYS = 10 * 8 * 3600 * 1_000_000
AMOUNTS = st.one_of(
    st.integers(min_value=0, max_value=TEN_DAYS).map(lambda us: dt.timedelta(microseconds=us)),
    st.integers(min_value=0, max_value=80 * 4).map(lambda quarters: quarters * 15 * MINUTE),
)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(CALENDARS, STARTS, AMOUNTS)
def test_between_is_the_inverse_of_add(
    calendar: WorkingCalendar, start: dt.datetime, amount: dt.timedelta
) -> None:
    assert calendar.working_time_between(start, calendar.add_working_time(start, amount)) == amount


@PROPERTY_SETTINGS
@given(CALENDARS, STARTS, AMOUNTS)
def test_deadline_lands_in_or_at_the_end_of_working_time(
    calendar: WorkingCalendar, start: dt.datetime, amount: dt.timedelta
) -> None:
    deadline = calendar.add_working_time(start, amount)
    if amount == dt.timedelta(0):
        assert deadline == start
    else:
        assert deadline > start
        assert calendar.is_working_time(deadline - MICROSECOND)
        assert deadline.tzinfo is calendar.tz


@PROPERTY_SETTINGS
@given(CALENDARS, STARTS, STARTS, AMOUNTS)
def test_add_is_monotonic(
    calendar: WorkingCalendar, first: dt.datetime, second: dt.datetime, amount: dt.timedelta
) -> None:
    early, late = sorted([first, second])
    assert calendar.add_working_time(early, amount) <= calendar.add_working_time(late, amount)


@PROPERTY_SETTINGS
@given(CALENDARS, STARTS, AMOUNTS, AMOUNTS)
def test_add_is_additive(
    calendar: WorkingCalendar, start: dt.datetime, first: dt.timedelta, second: dt.timedelta
) -> None:
    in_two_steps = calendar.add_working_time(calendar.add_working_time(start, first), second)
    assert in_two_steps == calendar.add_working_time(start, first + second)


@PROPERTY_SETTINGS
@given(CALENDARS, STARTS, STARTS)
def test_between_splits_at_any_instant(
    calendar: WorkingCalendar, first: dt.datetime, second: dt.datetime
) -> None:
    early, late = sorted([first, second])
    middle = early + (late - early) / 3
    whole = calendar.working_time_between(early, late)
    assert whole == calendar.working_time_between(early, middle) + calendar.working_time_between(middle, late)
    assert whole <= late - early
