"""The pure on-call resolver: rotation handoffs to the microsecond, time zones, DST, overrides."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from intaked.config import OncallScheduleSettings, settings_from_mapping
from intaked.paging.oncall import OnDuty, Override, on_duty, stints

TAIPEI = ZoneInfo("Asia/Taipei")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TICK = dt.timedelta(microseconds=1)
PEOPLE = {
    name: {"phone": f"+88691234567{i}"} for i, name in enumerate(["chen", "lin", "wang", "zhang", "huang"])
}


def schedule(**values: Any) -> OncallScheduleSettings:
    """One ``[oncall.duty]`` schedule, validated the way the configuration file is."""
    values.setdefault("people", ["chen", "lin", "wang"])
    settings = settings_from_mapping({"people": PEOPLE, "oncall": {"duty": values}}, environ={})
    return settings.oncall["duty"]


def taipei(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=TAIPEI)  # type: ignore[misc]


def override(
    id: int, person: str, starts_at: dt.datetime, ends_at: dt.datetime, replaces: str | None = None
) -> Override:
    return Override(
        id=id, schedule="duty", person=person, starts_at=starts_at, ends_at=ends_at, replaces=replaces
    )


# Weekly, Monday 09:00 Asia/Taipei: chen from 2026-11-02, lin from 11-09, wang from 11-16, chen 11-23 ...
WEEKLY = {"start": "2026-11-02", "handoff_weekday": "monday"}
HANDOFF = taipei(2026, 11, 23, 9, 0)


def test_weekly_handoff_instant_belongs_to_the_new_person() -> None:
    weekly = schedule(**WEEKLY)
    at = on_duty(weekly, [], HANDOFF)
    assert at == OnDuty(
        person="chen",
        source="rotation",
        since=HANDOFF,
        until=taipei(2026, 11, 30, 9, 0),
        next_person="lin",
        rotation_person="chen",
    )
    before = on_duty(weekly, [], HANDOFF - TICK)
    assert (before.person, before.since, before.until, before.next_person) == (
        "wang",
        taipei(2026, 11, 16, 9, 0),
        HANDOFF,
        "chen",
    )
    assert on_duty(weekly, [], HANDOFF + TICK).person == "chen"
    assert on_duty(weekly, [], dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)).person == "chen", (
        "same instant in UTC"
    )
    assert on_duty(weekly, [], dt.datetime(2026, 11, 23, 0, 59, 59, 999999, tzinfo=dt.UTC)).person == "wang"


def test_weekday_names_the_handoff_day_when_start_is_left_out() -> None:
    thursday = schedule(handoff_weekday="thu", handoff_time="18:30")
    duty = on_duty(thursday, [], taipei(2026, 11, 22, 12, 0))
    assert duty.since == taipei(2026, 11, 19, 18, 30) and duty.until == taipei(2026, 11, 26, 18, 30)
    assert duty.since.astimezone(TAIPEI).strftime("%A") == "Thursday"


def test_a_rotation_runs_across_the_year_end() -> None:
    weekly = schedule(start="2026-12-28")  # a Monday: the weekday of start is the handoff day
    assert on_duty(weekly, [], taipei(2027, 1, 1, 0, 0)).person == "chen"
    new_year = on_duty(weekly, [], taipei(2027, 1, 4, 9, 0))
    assert (new_year.person, new_year.next_person) == ("lin", "wang")
    assert on_duty(weekly, [], taipei(2027, 1, 4, 8, 59, 59, 999999)).person == "chen"
    daily = schedule(start="2026-12-30", shift="1d", handoff_time="08:00")
    assert on_duty(daily, [], taipei(2027, 1, 1, 7, 59, 59, 999999)).person == "lin"
    assert on_duty(daily, [], taipei(2027, 1, 1, 8, 0)).person == "wang"
    assert on_duty(daily, [], taipei(2027, 1, 2, 8, 0)).person == "chen", "after the last, the first again"


def test_daily_shifts() -> None:
    daily = schedule(start="2026-11-02", shift="1d", handoff_time="08:00", people=["chen", "lin"])
    duty = on_duty(daily, [], taipei(2026, 11, 5, 7, 0))
    assert (duty.person, duty.since, duty.until, duty.next_person) == (
        "chen",  # 11-02 chen, 11-03 lin, 11-04 chen
        taipei(2026, 11, 4, 8, 0),
        taipei(2026, 11, 5, 8, 0),
        "lin",
    )


def test_twelve_hour_shifts() -> None:
    halves = schedule(start="2026-11-02", shift="12h", handoff_time="08:00", people=["chen", "lin"])
    assert on_duty(halves, [], taipei(2026, 11, 2, 8, 0)).person == "chen"
    night = on_duty(halves, [], taipei(2026, 11, 2, 20, 0))
    assert (night.person, night.until, night.next_person) == ("lin", taipei(2026, 11, 3, 8, 0), "chen")
    assert on_duty(halves, [], taipei(2026, 11, 3, 7, 59, 59, 999999)).person == "lin"
    assert on_duty(halves, [], taipei(2026, 11, 3, 8, 0)).person == "chen"


def test_before_start_the_rotation_runs_backwards() -> None:
    future = schedule(start="2026-11-02")
    # periodic: the week before start is the last person's, two weeks before the one before that
    assert on_duty(future, [], taipei(2026, 10, 30, 12, 0)).person == "wang"
    assert on_duty(future, [], taipei(2026, 10, 19, 9, 0)).person == "lin"
    assert on_duty(future, [], taipei(2026, 10, 19, 8, 59)).person == "chen"
    assert on_duty(future, [], taipei(2026, 11, 2, 8, 59)).next_person == "chen"


def test_a_one_person_rotation_always_names_that_person() -> None:
    director = schedule(people=["huang"])
    for day in (1, 100, 1000, -1000):
        assert on_duty(director, [], HANDOFF + dt.timedelta(days=day)).person == "huang"
    assert on_duty(director, [], HANDOFF).next_person == "huang"


def test_weekly_handoff_stays_at_local_wall_time_across_spring_forward() -> None:
    # Europe/Berlin moves from CET (+01) to CEST (+02) on Sunday 2026-03-29.
    berlin = schedule(start="2026-03-23", timezone="Europe/Berlin", people=["chen", "lin"])
    handoff = dt.datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN)
    assert handoff == dt.datetime(2026, 3, 30, 7, 0, tzinfo=dt.UTC)
    first = on_duty(berlin, [], handoff - TICK)
    assert (first.person, first.since, first.until) == (
        "chen",
        dt.datetime(2026, 3, 23, 8, 0, tzinfo=dt.UTC),
        handoff,
    )
    assert first.until - first.since == dt.timedelta(hours=167), "the week of the change is an hour short"
    assert on_duty(berlin, [], handoff).person == "lin"
    # a fixed 168-hour step would hand off at 08:00 UTC (10:00 local): that hour is lin's
    assert on_duty(berlin, [], dt.datetime(2026, 3, 30, 7, 30, tzinfo=dt.UTC)).person == "lin"


def test_daily_handoff_across_fall_back_in_new_york() -> None:
    # America/New_York leaves EDT (-04) for EST (-05) on Sunday 2026-11-01.
    ny = schedule(start="2026-10-30", shift="1d", timezone="America/New_York", people=["chen", "lin"])
    saturday = on_duty(ny, [], dt.datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK))
    assert saturday.person == "lin"
    assert saturday.since == dt.datetime(2026, 10, 31, 13, 0, tzinfo=dt.UTC)
    assert saturday.until == dt.datetime(2026, 11, 1, 14, 0, tzinfo=dt.UTC), "09:00 EST"
    assert saturday.until - saturday.since == dt.timedelta(hours=25)
    assert on_duty(ny, [], dt.datetime(2026, 11, 1, 13, 30, tzinfo=dt.UTC)).person == "lin"
    assert on_duty(ny, [], dt.datetime(2026, 11, 1, 14, 0, tzinfo=dt.UTC)).person == "chen"


def test_a_handoff_in_the_spring_forward_gap_happens_an_hour_later_by_the_clock() -> None:
    night = schedule(
        start="2026-03-27",
        shift="1d",
        handoff_time="02:30",
        timezone="Europe/Berlin",
        people=["chen", "lin"],
    )
    # 2026-03-29 02:30 does not exist in Berlin: the handoff is at 01:30 UTC (03:30 CEST)
    duty = on_duty(night, [], dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC))
    assert (duty.person, duty.until) == ("lin", dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC))
    assert on_duty(night, [], dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)).person == "chen"


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        on_duty(schedule(), [], dt.datetime(2026, 11, 23, 9, 0))


# --- overrides: the rotation is WEEKLY above: chen 11-23 09:00 .. 11-30 09:00, then lin ---------


def test_a_whole_role_override_takes_the_role_from_whoever_is_on() -> None:
    weekly = schedule(**WEEKLY)
    sick = override(1, "zhang", taipei(2026, 11, 24, 0, 0), taipei(2026, 11, 25, 0, 0))
    during = on_duty(weekly, [sick], taipei(2026, 11, 24, 12, 0))
    assert during == OnDuty(
        person="zhang",
        source="override",
        since=taipei(2026, 11, 24, 0, 0),
        until=taipei(2026, 11, 25, 0, 0),
        next_person="chen",
        rotation_person="chen",
        override_id=1,
    )
    before = on_duty(weekly, [sick], taipei(2026, 11, 23, 12, 0))
    assert (before.person, before.until, before.next_person) == ("chen", taipei(2026, 11, 24, 0, 0), "zhang")
    after = on_duty(weekly, [sick], taipei(2026, 11, 25, 0, 0))
    assert (after.person, after.source, after.since, after.until) == (
        "chen",
        "rotation",
        taipei(2026, 11, 25, 0, 0),
        taipei(2026, 11, 30, 9, 0),
    )


def test_a_whole_role_override_spans_handoffs_as_one_stint() -> None:
    weekly = schedule(**WEEKLY)
    holiday = override(4, "huang", taipei(2026, 11, 20, 0, 0), taipei(2026, 12, 2, 0, 0))
    duty = on_duty(weekly, [holiday], HANDOFF)
    assert (duty.person, duty.since, duty.until, duty.next_person, duty.rotation_person) == (
        "huang",
        taipei(2026, 11, 20, 0, 0),
        taipei(2026, 12, 2, 0, 0),
        "lin",
        "chen",
    )


def test_an_override_with_replaces_applies_only_during_that_persons_shift() -> None:
    weekly = schedule(**WEEKLY)
    trip = override(2, "zhang", taipei(2026, 11, 23, 0, 0), taipei(2026, 12, 1, 0, 0), replaces="lin")
    assert on_duty(weekly, [trip], taipei(2026, 11, 23, 8, 0)).person == "wang", "wang's shift: not replaced"
    chen = on_duty(weekly, [trip], taipei(2026, 11, 26, 12, 0))
    assert (chen.person, chen.source, chen.until, chen.next_person) == (
        "chen",
        "rotation",
        taipei(2026, 11, 30, 9, 0),
        "zhang",
    )
    stand_in = on_duty(weekly, [trip], taipei(2026, 11, 30, 9, 0))
    assert (stand_in.person, stand_in.source, stand_in.since, stand_in.until, stand_in.next_person) == (
        "zhang",
        "override",
        taipei(2026, 11, 30, 9, 0),
        taipei(2026, 12, 1, 0, 0),
        "lin",
    )
    assert on_duty(weekly, [trip], taipei(2026, 12, 1, 0, 0)).person == "lin"


def test_overlapping_overrides_the_newest_wins() -> None:
    weekly = schedule(**WEEKLY)
    older = override(5, "zhang", taipei(2026, 11, 24, 0, 0), taipei(2026, 11, 28, 0, 0))
    newer = override(9, "huang", taipei(2026, 11, 25, 0, 0), taipei(2026, 11, 26, 0, 0))
    for given in ([older, newer], [newer, older]):
        assert on_duty(weekly, given, taipei(2026, 11, 25, 12, 0)).person == "huang"
        first = on_duty(weekly, given, taipei(2026, 11, 24, 12, 0))
        assert (first.person, first.until, first.next_person) == (
            "zhang",
            taipei(2026, 11, 25, 0, 0),
            "huang",
        )
        back = on_duty(weekly, given, taipei(2026, 11, 26, 0, 0))
        assert (back.person, back.override_id, back.since, back.until) == (
            "zhang",
            5,
            taipei(2026, 11, 26, 0, 0),
            taipei(2026, 11, 28, 0, 0),
        )
    # a newer override that covers everything hides the older one completely
    wider = override(10, "lin", taipei(2026, 11, 23, 0, 0), taipei(2026, 11, 29, 0, 0))
    assert on_duty(weekly, [older, newer, wider], taipei(2026, 11, 25, 12, 0)).person == "lin"


def test_an_override_ending_exactly_at_the_handoff() -> None:
    weekly = schedule(**WEEKLY)
    weekend = override(3, "zhang", taipei(2026, 11, 28, 18, 0), taipei(2026, 11, 30, 9, 0))
    last = on_duty(weekly, [weekend], taipei(2026, 11, 30, 8, 59, 59, 999999))
    assert (last.person, last.until, last.next_person) == ("zhang", taipei(2026, 11, 30, 9, 0), "lin")
    handoff = on_duty(weekly, [weekend], taipei(2026, 11, 30, 9, 0))
    assert (handoff.person, handoff.source, handoff.since) == ("lin", "rotation", taipei(2026, 11, 30, 9, 0))


def test_stints_lists_the_upcoming_shifts_with_overrides_applied() -> None:
    weekly = schedule(**WEEKLY)
    trip = override(2, "zhang", taipei(2026, 11, 23, 0, 0), taipei(2026, 12, 1, 0, 0), replaces="lin")
    found = stints(weekly, [trip], taipei(2026, 11, 22, 0, 0), taipei(2026, 12, 8, 0, 0))
    assert [(s.person, s.since.astimezone(TAIPEI).strftime("%m-%d %H:%M")) for s in found] == [
        ("wang", "11-16 09:00"),
        ("chen", "11-23 09:00"),
        ("zhang", "11-30 09:00"),
        ("lin", "12-01 00:00"),
        ("wang", "12-07 09:00"),
    ]


def test_hourly_stints_stay_contiguous_across_both_changes() -> None:
    hourly = schedule(start="2026-03-28", shift="1h", handoff_time="00:00", timezone="Europe/Berlin")
    for day in (
        dt.datetime(2026, 3, 28, 20, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 24, 20, 0, tzinfo=dt.UTC),
    ):
        found = stints(hourly, [], day, day + dt.timedelta(hours=10))
        assert all(s.since < s.until for s in found)
        assert all(a.until == b.since for a, b in itertools.pairwise(found))
        assert sum((s.until - s.since for s in found), dt.timedelta()) >= dt.timedelta(hours=10)
