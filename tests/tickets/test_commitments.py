"""People changing a ticket's commitment (intaked/tickets/commitments.py) on a real store: commit
before work only, extend (the requester gets the new time, in Traditional Chinese and English, at
the relay), escalate (the team's lead or a person is told), every refusal leaving the ticket as
it was."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from intaked.outbound.dispatcher import dispatch_once
from intaked.sla.tracker import sync_tickets
from intaked.store.models import ticket_table
from intaked.tickets.commitments import commit, escalate, extend
from intaked.tickets.lifecycle import InvalidChange, TicketNotFound, resolve, take, triage
from tests.sla.test_tracker import TPE, XMAS_EVE, Desk, at, local
from tests.support.fake_relay import FakeRelay

P3_DUE = at(30, 16)
UNTIL = dt.datetime(2027, 1, 5, 17, 0, tzinfo=TPE)  # a Tuesday


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    d = Desk(
        db_url,
        teams={"network": {"email": "net@example.com", "lead_email": "net-lead@example.com"}},
        people={"chen": {"phone": "+886912345678", "email": "chen@example.com"}},
    )
    yield d
    d.engine.dispose()


def triaged(desk: Desk) -> str:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", team="network", by="Chen", now=XMAS_EVE)
    return number


def state(desk: Desk, number: str) -> tuple[Any, ...]:
    t = desk.ticket(number)
    return (
        local(t["first_commitment_at"]),
        local(t["commitment_at"]),
        t["extension_count"],
        t["escalation_count"],
        t["status"],
    )


def sent(desk: Desk) -> list[Any]:
    """The mails the outbox hands the relay now, acknowledgements of new tickets aside."""
    relay = FakeRelay()
    while dispatch_once(desk.engine, desk.settings, relay):
        pass
    return [item.message for item in relay.handed if not item.message["Message-ID"].startswith("<ack.")]


def test_commit_before_work_then_refused_once_work_started(desk: Desk) -> None:
    number = triaged(desk)
    promised = at(29, 12)
    changed = commit(desk.engine, desk.ctx, number, at=promised, by="Chen", now=at(24, 16, 5))
    assert (local(changed.first_commitment_at), local(changed.commitment_at)) == (promised, promised)
    assert state(desk, number) == (promised, promised, 0, 0, "new")
    take(desk.engine, desk.ctx, number, by="Wang", now=at(28, 9))
    before = state(desk, number)
    with pytest.raises(InvalidChange, match=r"work started at 2026-12-28T09:00:00\+08:00, so its first"):
        commit(desk.engine, desk.ctx, number, at=at(31, 12), by="Chen", now=at(28, 10))
    assert state(desk, number) == before
    assert [e["actor"] for e in desk.events(number) if e["kind"] == "commitment_set"] == ["intaked", "Chen"]


def test_extend_tells_the_requester_the_new_time_and_counts(desk: Desk) -> None:
    number = triaged(desk)
    take(desk.engine, desk.ctx, number, by="Wang", now=at(28, 9))
    reason = "原廠缺料，下週才到貨"
    changed = extend(desk.engine, desk.ctx, number, until=UNTIL, reason=reason, by="Wang", now=at(28, 10))
    assert changed.mailed == ("lin@example.com",)
    assert state(desk, number) == (P3_DUE, UNTIL, 1, 0, "open")
    (extended,) = [e for e in desk.events(number) if e["kind"] == "commitment_extended"]
    assert extended["actor"] == "Wang" and json.loads(extended["detail"]) == {"reason": reason}
    assert json.loads(extended["after"]) == {
        "commitment_at": "2027-01-05T09:00:00+00:00",
        "extension_count": 1,
    }
    (mail,) = sent(desk)
    assert mail["To"].addresses[0].addr_spec == "lin@example.com"
    assert number in mail["Subject"] and "預計完成時間" in mail["Subject"]
    assert mail["In-Reply-To"] == "<sla-1@example.com>", "in the requester's thread"
    text = mail.get_body(("plain",)).get_content()
    assert "新的預計完成時間為 2027年1月5日（週二）17:00（原為 2026年12月30日（週三）16:00）" in text
    assert "complete it by Tue 5 Jan 2027, 17:00 (instead of Wed 30 Dec 2026, 16:00)" in text
    assert text.index("2027年1月5日") < text.index("Tue 5 Jan 2027"), "Traditional Chinese first"
    assert reason in text
    assert [e["kind"] for e in desk.events(number)][-1] == "extension_notice_sent"
    assert sync_tickets(desk.engine, desk.ctx, now=at(28, 11)) == 0, "our own change is no tool's write"
    extend(
        desk.engine,
        desk.ctx,
        number,
        until=UNTIL + dt.timedelta(days=1),
        reason="再延",
        by="Wang",
        now=at(29, 9),
    )
    assert state(desk, number)[2] == 2


def test_extend_refuses_an_earlier_time_a_closed_ticket_and_no_commitment(desk: Desk) -> None:
    number = triaged(desk)
    before = state(desk, number)
    with pytest.raises(
        InvalidChange, match=r"must be later than the current one, 2026-12-30T16:00:00\+08:00"
    ):
        extend(desk.engine, desk.ctx, number, until=at(29, 9), reason="x", by="Wang", now=at(28, 9))
    assert state(desk, number) == before
    untriaged = desk.report()
    with pytest.raises(InvalidChange, match="has no commitment yet"):
        extend(desk.engine, desk.ctx, untriaged, until=UNTIL, reason="x", by="Wang", now=at(28, 9))
    resolve(desk.engine, desk.ctx, number, by="Wang", now=at(28, 9))
    with desk.engine.begin() as conn:
        conn.execute(update(ticket_table).where(ticket_table.c.number == number).values(status="closed"))
    with pytest.raises(InvalidChange, match=f"{number} is already closed"):
        extend(desk.engine, desk.ctx, number, until=UNTIL, reason="x", by="Wang", now=at(28, 10))
    with pytest.raises(TicketNotFound):
        extend(desk.engine, desk.ctx, "IT-209901-00001", until=UNTIL, reason="x", by="Wang", now=at(28, 10))
    assert desk.ticket(number)["extension_count"] == 0
    assert [m["Subject"] for m in sent(desk) if "預計完成時間" in m["Subject"]] == [], "nobody was told"


def test_escalate_tells_the_team_lead_and_counts(desk: Desk) -> None:
    number = triaged(desk)
    take(desk.engine, desk.ctx, number, by="Wang", now=at(28, 9))
    changed = escalate(
        desk.engine, desk.ctx, number, to="network", reason="需要主管核准採購", by="Wang", now=at(28, 10)
    )
    assert changed.mailed == ("net-lead@example.com",)
    assert state(desk, number) == (P3_DUE, P3_DUE, 0, 1, "open")
    (escalated,) = [e for e in desk.events(number) if e["kind"] == "escalated"]
    assert escalated["actor"] == "Wang"
    assert json.loads(escalated["detail"]) == {
        "to": "network",
        "address": "net-lead@example.com",
        "as": "team lead",
        "reason": "需要主管核准採購",
    }
    (mail,) = sent(desk)
    assert mail["To"].addresses[0].addr_spec == "net-lead@example.com"
    text = mail.get_body(("plain",)).get_content()
    assert "已升級給 network（第 1 次升級）" in text and "需要主管核准採購" in text
    assert "預計完成時間：2026年12月30日（週三）16:00" in text and "Wed 30 Dec 2026, 16:00" in text


def test_escalate_to_a_person_with_a_new_commitment_tells_them_and_the_requester(desk: Desk) -> None:
    number = triaged(desk)
    take(desk.engine, desk.ctx, number, by="Wang", now=at(28, 9))
    changed = escalate(
        desk.engine, desk.ctx, number, to="chen", reason="跨部門", by="Wang", until=UNTIL, now=at(28, 10)
    )
    assert sorted(changed.mailed) == ["chen@example.com", "lin@example.com"]
    assert state(desk, number) == (P3_DUE, UNTIL, 0, 1, "open"), "an escalation, not an extension"
    mails = {m["To"].addresses[0].addr_spec: m for m in sent(desk)}
    assert "2027年1月5日（週二）17:00" in mails["chen@example.com"].get_body(("plain",)).get_content()
    assert "Tue 5 Jan 2027, 17:00" in mails["lin@example.com"].get_body(("plain",)).get_content()


def test_escalate_to_nobody_configured_is_refused(desk: Desk) -> None:
    number = triaged(desk)
    before = state(desk, number)
    with pytest.raises(
        InvalidChange, match=r"no team or person named 'helpdesk' \(teams: network; people: chen\)"
    ):
        escalate(desk.engine, desk.ctx, number, to="helpdesk", reason="x", by="Wang", now=at(28, 10))
    assert state(desk, number) == before


def test_escalate_to_a_name_in_the_employee_directory(db_url: str, tmp_path: Path) -> None:
    listing = tmp_path / "directory.csv"
    listing.write_text("name,email,phone\n王大明,wang.dm@example.com,0912345678\n", encoding="utf-8")
    desk = Desk(db_url, directory={"path": str(listing)})
    try:
        number = desk.report()
        changed = escalate(
            desk.engine, desk.ctx, number, to="王大明", reason="x", by="Lin", now=at(24, 16, 5)
        )
        assert changed.mailed == ("wang.dm@example.com",) and changed.escalation_count == 1
    finally:
        desk.engine.dispose()
