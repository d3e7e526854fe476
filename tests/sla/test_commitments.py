"""The commitments kept current with the deadlines (intaked/sla/commitments.py) on real tickets in
a real store: they follow the standard time until work starts, a commitment another tool writes
is noticed once, and a breach notice to a team's lead counts as an escalation once."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from intaked.sla.enforcement import check_due
from intaked.sla.tracker import sync_tickets
from intaked.store.models import ticket_table
from intaked.tickets.commitments import commit
from intaked.tickets.lifecycle import remove_override, set_override, take, triage
from tests.sla.test_tracker import XMAS_EVE, Desk, at, local, teams_desk

P3_DUE = at(30, 16)  # 3 working days from Thu 24 Dec 16:00 (Fri 25 Dec is Constitution Day)
P4_DUE = dt.datetime(2027, 1, 4, 16, 0, tzinfo=XMAS_EVE.tzinfo)  # 5 days: 1 Jan is a holiday too


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    d = Desk(db_url)
    yield d
    d.engine.dispose()


def written_by_a_tool(desk: Desk, number: str, **values: Any) -> None:
    """Another tool (an agent UI) writes ``values`` straight into the ticket's row."""
    with desk.engine.begin() as conn:
        conn.execute(update(ticket_table).where(ticket_table.c.number == number).values(**values))


def commitments(desk: Desk, number: str) -> tuple[Any, ...]:
    """Standard time, first and current commitment (local), extensions, escalations."""
    t = desk.ticket(number)
    return (
        local(t["standard_due_at"]),
        local(t["first_commitment_at"]),
        local(t["commitment_at"]),
        t["extension_count"],
        t["escalation_count"],
    )


def of_kind(desk: Desk, number: str, kind: str) -> list[Any]:
    return [e for e in desk.events(number) if e["kind"] == kind]


def utc(value: dt.datetime) -> str:
    """How events store a time: ISO 8601 in UTC."""
    return value.astimezone(dt.UTC).isoformat()


def test_no_commitment_until_triage_then_the_standard_time(desk: Desk) -> None:
    number = desk.report()
    assert commitments(desk, number) == (None, None, None, 0, 0), "no resolution deadline yet"
    triage(desk.engine, desk.ctx, number, priority="P3", by="Chen", now=XMAS_EVE)
    assert commitments(desk, number) == (P3_DUE, P3_DUE, P3_DUE, 0, 0)
    (followed,) = of_kind(desk, number, "commitment_set")
    assert followed["actor"] == "intaked"
    assert json.loads(followed["before"]) == {"first_commitment_at": None, "commitment_at": None}
    assert json.loads(followed["after"]) == {"first_commitment_at": utc(P3_DUE), "commitment_at": utc(P3_DUE)}
    assert json.loads(followed["detail"]) == {
        "reason": "follows the standard completion time",
        "standard_due_at": utc(P3_DUE),
    }


def test_a_priority_change_before_work_moves_both_commitments_after_work_neither(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", by="Chen", now=XMAS_EVE)
    written_by_a_tool(desk, number, priority="P4")  # before anyone took it
    assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 10)) == 1
    assert commitments(desk, number) == (P4_DUE, P4_DUE, P4_DUE, 0, 0)
    take(desk.engine, desk.ctx, number, by="Wang", now=at(28, 9))  # work starts
    written_by_a_tool(desk, number, priority="P3")
    assert sync_tickets(desk.engine, desk.ctx, now=at(28, 10)) == 1
    assert commitments(desk, number) == (P3_DUE, P4_DUE, P4_DUE, 0, 0), "only the standard time moves"
    assert len(of_kind(desk, number, "commitment_set")) == 2, "triage, then the P4 before work"


def test_a_commitment_made_before_triage_stays_when_the_standard_time_comes(desk: Desk) -> None:
    number = desk.report()
    promised = at(31, 12)
    commit(desk.engine, desk.ctx, number, at=promised, by="Chen", now=XMAS_EVE)
    assert commitments(desk, number) == (None, promised, promised, 0, 0)
    triage(desk.engine, desk.ctx, number, priority="P3", by="Chen", now=at(24, 16, 5))
    assert commitments(desk, number) == (P3_DUE, promised, promised, 0, 0), "set by commit: it stays"
    assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 6)) == 0


def test_a_commitment_written_by_a_tool_after_work_started_is_one_extension(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", by="Chen", now=XMAS_EVE)
    take(desk.engine, desk.ctx, number, by="Wang", now=at(28, 9))
    later = at(31, 17)
    written_by_a_tool(desk, number, commitment_at=later)
    assert sync_tickets(desk.engine, desk.ctx, now=at(28, 10)) == 1
    assert sync_tickets(desk.engine, desk.ctx, now=at(28, 11)) == 0, "noticed once"
    assert commitments(desk, number) == (P3_DUE, P3_DUE, later, 1, 0)
    assert local(desk.ticket(number)["sla_commitment_at"]) == later
    (extended,) = of_kind(desk, number, "commitment_extended")
    assert extended["actor"] == "tool"
    assert json.loads(extended["before"]) == {"commitment_at": utc(P3_DUE)}
    assert json.loads(extended["after"]) == {"commitment_at": utc(later)}
    assert json.loads(extended["detail"]) == {"reason": "written by another tool", "extension_count": 1}


def test_a_commitment_written_by_a_tool_before_work_started_is_the_first_commitment(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", by="Chen", now=XMAS_EVE)
    promised = at(29, 12)
    written_by_a_tool(desk, number, commitment_at=promised)
    assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 10)) == 1
    assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 11)) == 0
    assert commitments(desk, number) == (P3_DUE, promised, promised, 0, 0), "no extension"
    tool_set = [e for e in of_kind(desk, number, "commitment_set") if e["actor"] == "tool"]
    assert [json.loads(e["after"]) for e in tool_set] == [
        {"first_commitment_at": utc(promised), "commitment_at": utc(promised)}
    ]
    written_by_a_tool(desk, number, priority="P4")  # the tool's commitment is not the standard time
    sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 12))
    assert commitments(desk, number) == (P4_DUE, promised, promised, 0, 0)


def test_a_commitment_cleared_by_a_tool_is_kept(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", by="Chen", now=XMAS_EVE)
    written_by_a_tool(desk, number, commitment_at=None)
    assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 10)) == 1
    assert commitments(desk, number) == (P3_DUE, P3_DUE, P3_DUE, 0, 0)
    assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 11)) == 0


def test_a_typhoon_day_moves_the_commitments_of_tickets_not_started_only(desk: Desk) -> None:
    waiting, taken = desk.report(), desk.report()
    for number in (waiting, taken):
        triage(desk.engine, desk.ctx, number, priority="P3", by="Chen", now=XMAS_EVE)
    take(desk.engine, desk.ctx, taken, by="Wang", now=at(24, 16, 30))
    typhoon = dt.date(2026, 12, 28)
    assert set_override(desk.engine, desk.settings, "default", typhoon, "holiday", "颱風假") == 2
    assert commitments(desk, waiting) == (at(31, 16), at(31, 16), at(31, 16), 0, 0)
    assert commitments(desk, taken) == (at(31, 16), P3_DUE, P3_DUE, 0, 0)
    assert remove_override(desk.engine, desk.settings, "default", typhoon) == 2
    assert commitments(desk, waiting) == (P3_DUE, P3_DUE, P3_DUE, 0, 0)


def test_a_breach_notice_to_the_team_lead_is_one_escalation(db_url: str) -> None:
    desk = teams_desk(db_url)
    try:
        number = desk.report()
        triage(desk.engine, desk.ctx, number, priority="P1", team="network", now=XMAS_EVE)
        check_due(desk.engine, desk.ctx, now=at(24, 16, 12))  # the warning: no escalation
        assert desk.ticket(number)["escalation_count"] == 0
        check_due(desk.engine, desk.ctx, now=at(24, 16, 20))  # response breached, the lead told
        check_due(desk.engine, desk.ctx, now=at(24, 16, 30))
        assert "net-lead@example.com" in [b["recipient"] for b in desk.outbox("sla_breach")]
        assert desk.ticket(number)["escalation_count"] == 1, "once per breach"
        (escalated,) = of_kind(desk, number, "escalated")
        assert escalated["actor"] == "intaked"
        assert json.loads(escalated["before"]) == {"escalation_count": 0}
        assert json.loads(escalated["after"]) == {"escalation_count": 1}
        detail = json.loads(escalated["detail"])
        assert detail["reason"] == "response target breached" and detail["address"] == "net-lead@example.com"
        sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 31))
        assert desk.ticket(number)["escalation_count"] == 1
    finally:
        desk.engine.dispose()


def test_a_breach_without_a_team_lead_is_no_escalation(db_url: str) -> None:
    desk = Desk(db_url, teams={"network": {"email": "net@example.com"}}, triage={"team": "network"})
    try:
        number = desk.report()
        check_due(desk.engine, desk.ctx, now=at(24, 16, 16))  # triage breached, the team told
        assert desk.ticket(number)["triage_breached_at"] is not None
        assert desk.ticket(number)["escalation_count"] == 0 and of_kind(desk, number, "escalated") == []
    finally:
        desk.engine.dispose()
