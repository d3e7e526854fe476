"""SLA targets: configured durations, the two clocks, and the default priority table's deadlines."""

from __future__ import annotations

import datetime as dt

import pytest

from intaked.sla.calendar import CalendarSpec, WorkingCalendar
from intaked.sla.targets import DEFAULT_POLICIES, Target, parse_duration

TAIPEI = dt.timezone(dt.timedelta(hours=8))
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
ZERO = dt.timedelta(0)

DEFAULT = WorkingCalendar(CalendarSpec())


def taipei(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=TAIPEI)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", (15 * MINUTE, 0)),
        ("4h", (4 * HOUR, 0)),
        ("1h30m", (90 * MINUTE, 0)),
        ("90s", (dt.timedelta(seconds=90), 0)),
        ("3d", (ZERO, 3)),
        ("2d4h", (4 * HOUR, 2)),
        ("15 min", (15 * MINUTE, 0)),
        ("4 hours", (4 * HOUR, 0)),
        ("8 working hours", (8 * HOUR, 0)),
        ("3 working days", (ZERO, 3)),
        ("5 days", (ZERO, 5)),
        ("1 day", (ZERO, 1)),
        ("  1 Hour 30 Minutes ", (90 * MINUTE, 0)),
        ("2D 4H", (4 * HOUR, 2)),
    ],
)
def test_parse_duration(text: str, expected: tuple[dt.timedelta, int]) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "3 weeks", "4", "h", "1.5h", "-4h", "30m1h", "1h1h", "4 hourz", "4h and 5m", "9" * 13 + "h"],
)
def test_parse_duration_refuses_other_text_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: use e\.g\. 15m, 4h, 3d") as raised:
        parse_duration(text)
    assert repr(text) in str(raised.value)


def test_target_checks_its_text_and_clock_when_made() -> None:
    with pytest.raises(ValueError, match="'3 weeks' is not a duration"):
        Target("3 weeks", "working")
    with pytest.raises(ValueError, match="clock"):
        Target("4h", "business")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="24x7"):
        Target("8 working hours", "24x7")


def test_length_of_a_day_depends_on_the_clock() -> None:
    assert Target("3d", "working").length(DEFAULT) == 24 * HOUR
    assert Target("3d", "24x7").length(DEFAULT) == 72 * HOUR
    assert Target("2d4h", "working").length(DEFAULT) == 20 * HOUR


def test_a_seven_hour_day_makes_3d_21_hours() -> None:
    seven_hours = WorkingCalendar(CalendarSpec(day_length=7 * HOUR))
    assert Target("3d", "working").length(seven_hours) == 21 * HOUR
    assert Target("3 working days", "working").length(seven_hours) == 21 * HOUR


def test_p3_deadlines_over_constitution_day() -> None:
    p3 = DEFAULT_POLICIES["P3"]
    start = taipei(2026, 12, 24, 16)
    assert p3.response.deadline(DEFAULT, start) == taipei(2026, 12, 28, 11)
    assert p3.resolution.deadline(DEFAULT, start) == taipei(2026, 12, 30, 16)


def test_p1_runs_round_the_clock_on_a_saturday_night() -> None:
    p1 = DEFAULT_POLICIES["P1"]
    start = taipei(2026, 3, 14, 3)  # Saturday 03:00
    assert p1.response.deadline(DEFAULT, start) == taipei(2026, 3, 14, 3, 15)
    assert p1.resolution.deadline(DEFAULT, start) == taipei(2026, 3, 14, 7)
    assert p1.resolution.deadline(DEFAULT, start).tzinfo is DEFAULT.tz


def test_p2_responds_round_the_clock_and_resolves_in_8_working_hours() -> None:
    p2 = DEFAULT_POLICIES["P2"]
    friday_evening = taipei(2026, 3, 13, 20)
    assert p2.response.deadline(DEFAULT, friday_evening) == taipei(2026, 3, 13, 21)
    assert p2.resolution.deadline(DEFAULT, friday_evening) == taipei(2026, 3, 16, 17, 30)
    assert p2.resolution.deadline(DEFAULT, taipei(2026, 3, 10, 10)) == taipei(2026, 3, 11, 10)


def test_p4_resolution_is_five_working_days() -> None:
    resolution = DEFAULT_POLICIES["P4"].resolution
    assert resolution.deadline(DEFAULT, taipei(2026, 3, 10, 10)) == taipei(2026, 3, 17, 10)


def test_extra_time_is_added_on_the_targets_clock() -> None:
    start = taipei(2026, 3, 10, 16, 30)
    assert Target("1h", "working").deadline(DEFAULT, start, extra=HOUR) == taipei(2026, 3, 11, 9, 30)
    assert Target("1h", "24x7").deadline(DEFAULT, start, extra=HOUR) == taipei(2026, 3, 10, 18, 30)


def test_24x7_counts_real_time_across_a_dst_change() -> None:
    chicago = WorkingCalendar(CalendarSpec(timezone="America/Chicago", country=None))
    before = dt.datetime(2026, 3, 8, 0, 0, tzinfo=chicago.tz)
    deadline = Target("4h", "24x7").deadline(chicago, before)
    assert deadline.replace(tzinfo=None) == dt.datetime(2026, 3, 8, 5, 0)  # 02:00 does not exist
    assert Target("4h", "24x7").elapsed(chicago, before, deadline) == 4 * HOUR


def test_elapsed_on_each_clock() -> None:
    start, end = taipei(2026, 12, 24, 16), taipei(2026, 12, 28, 11)
    assert Target("4h", "working").elapsed(DEFAULT, start, end) == 4 * HOUR
    assert Target("4h", "24x7").elapsed(DEFAULT, start, end) == 91 * HOUR
    assert Target("4h", "24x7").elapsed(DEFAULT, end, start) == ZERO
    assert Target("4h", "working").elapsed(DEFAULT, end, start) == ZERO


def test_deadline_needs_an_aware_start() -> None:
    naive = dt.datetime(2026, 3, 10, 10)
    for clock in ("24x7", "working"):
        with pytest.raises(ValueError, match="no time zone"):
            Target("4h", clock).deadline(DEFAULT, naive)  # type: ignore[arg-type]


def test_default_policy_table() -> None:
    table = {
        priority: (
            policy.response.text,
            policy.response.clock,
            policy.resolution.text,
            policy.resolution.clock,
        )
        for priority, policy in DEFAULT_POLICIES.items()
    }
    assert table == {
        "P1": ("15m", "24x7", "4h", "24x7"),
        "P2": ("1h", "24x7", "8h", "working"),
        "P3": ("4h", "working", "3d", "working"),
        "P4": ("8h", "working", "5d", "working"),
    }
