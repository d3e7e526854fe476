"""The level and the clocks of a security incident: levels 1-4 and the seed's A-D set the
damage-control deadline on 24x7 time (across a weekend); the one-hour notification clock warns
and breaches once each, and stops when the authority was notified; the damage-control clock
stops at the form's repaired time; a level or an awareness time
written by another tool is noticed by the pass."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, update

from intaked.security.actions import set_aware, set_level, set_notified
from intaked.security.form import set_field
from intaked.security.levels import parse_level
from intaked.security.tracker import check_security
from intaked.store.models import security_form_table, ticket_table
from tests.security.conftest import FRIDAY_17, SOC, SOC_LEAD, TAIPEI, Desk

HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("given", "level", "contain_hours"),
    [
        ("1", 1, 72),
        ("2", 2, 72),
        ("3", 3, 36),
        ("4", 4, 36),
        ("A", 4, 36),
        ("b", 3, 36),
        ("C", 2, 72),
        ("D", 1, 72),
    ],
)
def test_a_level_sets_the_clocks_on_24x7_time(desk: Desk, given: str, level: int, contain_hours: int) -> None:
    number = desk.report()
    row = set_level(
        desk.engine, desk.settings, number, parse_level(given), by="chen", now=FRIDAY_17 + HOUR / 4
    )
    assert row["security_level"] == level
    assert row["security_aware_at"] == FRIDAY_17, "aware when the report arrived"
    assert row["security_notify_due_at"] == FRIDAY_17 + HOUR
    assert row["security_contain_due_at"] == FRIDAY_17 + dt.timedelta(hours=contain_hours)
    (set_event,) = desk.events(number, "security_level_set")
    assert set_event["actor"] == "chen" and set_event["detail"]["after"] == {"security_level": level}


def test_a_friday_evening_report_at_level_3_is_due_on_sunday_morning(desk: Desk) -> None:
    number = desk.report()
    row = set_level(desk.engine, desk.settings, number, parse_level("B"), by="chen", now=FRIDAY_17)
    assert row["security_contain_due_at"] == dt.datetime(2026, 12, 6, 5, 0, tzinfo=TAIPEI)  # Sunday 05:00


def test_an_awareness_time_moves_both_clocks(desk: Desk) -> None:
    number = desk.report()
    set_level(desk.engine, desk.settings, number, 1, by="chen", now=FRIDAY_17)
    aware = FRIDAY_17 - dt.timedelta(hours=3)
    row = set_aware(desk.engine, desk.settings, number, aware, by="chen", now=FRIDAY_17 + HOUR / 4)
    assert row["security_notify_due_at"] == aware + HOUR
    assert row["security_contain_due_at"] == aware + dt.timedelta(hours=72)


def test_the_notification_clock_warns_and_breaches_once_each(desk: Desk) -> None:
    number = desk.report()
    check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(minutes=10))
    assert desk.mails("security_warning") == []
    for _ in range(2):
        check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(minutes=46))
    (warning,) = desk.mails("security_warning")
    assert warning["recipient"] == SOC and "通報主管機關即將逾期" in warning["payload"]["subject"]
    assert desk.mails("security_breach") == []
    for _ in range(2):
        check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(minutes=61))
    breaches = desk.mails("security_breach")
    assert sorted(m["recipient"] for m in breaches) == sorted([SOC, SOC_LEAD])
    assert f"intaked security notified {number}" in breaches[0]["payload"]["text"]
    row = desk.ticket(number)
    assert row["security_notify_breached_at"] == FRIDAY_17 + HOUR
    assert row["security_notify_warned_at"] == FRIDAY_17 + dt.timedelta(minutes=46)
    assert [e["detail"]["target"] for e in desk.events(number, "security_warning")] == ["notify"]
    assert [e["detail"]["target"] for e in desk.events(number, "security_breach")] == ["notify"]


def test_notifying_the_authority_stops_the_clock(desk: Desk) -> None:
    number = desk.report()
    check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(minutes=50))
    assert len(desk.mails("security_warning")) == 1
    at = FRIDAY_17 + dt.timedelta(minutes=55)
    row = set_notified(desk.engine, desk.settings, number, at, by="chen", now=at)
    assert row["security_notified_at"] == at and row["security_next_check_at"] is None
    check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(hours=2))
    assert desk.mails("security_breach") == []
    assert desk.ticket(number)["security_notify_breached_at"] is None


def test_the_damage_control_clock_breaches_unless_resolved(desk: Desk) -> None:
    number = desk.report()
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)
    set_notified(
        desk.engine, desk.settings, number, FRIDAY_17 + HOUR / 2, by="chen", now=FRIDAY_17 + HOUR / 2
    )
    check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(hours=37))
    assert [e["detail"]["target"] for e in desk.events(number, "security_breach")] == ["contain"]
    assert desk.ticket(number)["security_contain_breached_at"] == FRIDAY_17 + dt.timedelta(hours=36)


@pytest.mark.parametrize("by_tool", [False, True], ids=["command", "tool"])
def test_the_form_s_repaired_time_stops_the_damage_control_clock(desk: Desk, by_tool: bool) -> None:
    number = desk.report()
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)
    set_notified(
        desk.engine, desk.settings, number, FRIDAY_17 + HOUR / 2, by="chen", now=FRIDAY_17 + HOUR / 2
    )
    repaired = FRIDAY_17 + dt.timedelta(hours=20)
    if by_tool:  # another tool writes the form's row
        ticket_id = desk.ticket(number)["id"]
        with desk.engine.begin() as conn:
            conn.execute(
                insert(security_form_table).values(
                    ticket_id=ticket_id, repaired_at=repaired, updated_at=repaired
                )
            )
    else:
        set_field(desk.engine, number, "repaired_at", repaired.isoformat(), by="chen", now=repaired)
    check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(hours=30))  # the warning's time
    check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(hours=37))  # the deadline's
    assert desk.events(number, "security_warning") == desk.events(number, "security_breach") == []
    row = desk.ticket(number)
    assert row["security_contain_breached_at"] is None and row["security_next_check_at"] is None


def test_a_level_written_by_another_tool_is_noticed(desk: Desk) -> None:
    number = desk.report()
    check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(minutes=1))
    with desk.engine.begin() as conn:
        conn.execute(update(ticket_table).where(ticket_table.c.number == number).values(security_level=3))
    assert check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(minutes=2)) == 1
    row = desk.ticket(number)
    assert row["security_contain_due_at"] == FRIDAY_17 + dt.timedelta(hours=36)
    assert row["security_chain_level"] == 3
    assert check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(minutes=3)) == 0
