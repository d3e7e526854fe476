"""Deadlines on real tickets in a real store (SQLite and PostgreSQL): triage, direct writes by
other tools, pending pauses, calendar overrides, warnings and breaches, the auto-close sweeper."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text, update
from structlog.testing import capture_logs

from intaked.config import Settings
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.sla.context import SlaContext, load_context
from intaked.sla.enforcement import check_due
from intaked.sla.sweeper import sweep
from intaked.sla.tracker import sync_tickets
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import outbox_table, ticket_event_table, ticket_table
from intaked.tickets.lifecycle import (
    InvalidChange,
    TicketNotFound,
    remove_override,
    resolve,
    set_override,
    take,
    triage,
)
from tests.support.daemon import make_settings

TPE = dt.timezone(dt.timedelta(hours=8))
XMAS_EVE = dt.datetime(2026, 12, 24, 16, 0, tzinfo=TPE)  # Thu; Fri 25 Dec is Constitution Day


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=TPE)


class Desk:
    """A store with tickets made the way intaked makes them, and clocks we set."""

    def __init__(self, url: str, **sections: Any) -> None:
        self.engine = make_engine(url)
        upgrade(self.engine)
        sections.setdefault("outbound_mail", {"from_address": "helpdesk@example.com"})
        self.settings: Settings = make_settings(url, **sections)
        self.count = 0

    @property
    def ctx(self) -> SlaContext:
        return load_context(self.engine, self.settings)

    def report(self, created: dt.datetime = XMAS_EVE, sender: str = "lin@example.com") -> str:
        self.count += 1
        raw = (
            f"From: Lin <{sender}>\r\nTo: helpdesk@example.com\r\nSubject: ERP 無法登入 {self.count}\r\n"
            f"Message-ID: <sla-{self.count}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "ERP 一直逾時。\r\n"
        ).encode()
        insert_items(self.engine, [RawItem("smtp", raw, envelope_from=sender)])
        while process_once(self.engine, self.settings):
            pass
        with self.engine.begin() as conn:
            number = conn.execute(
                select(ticket_table.c.number).order_by(ticket_table.c.id.desc()).limit(1)
            ).scalar_one()
            conn.execute(
                update(ticket_table)
                .where(ticket_table.c.number == number)
                .values(created_at=created, sla_status=None)
            )
        sync_tickets(self.engine, self.ctx, now=created)
        return number

    def ticket(self, number: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(ticket_table).where(ticket_table.c.number == number)).mappings().one()

    def events(self, number: str) -> list[Any]:
        t = self.ticket(number)
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(ticket_event_table)
                    .where(ticket_event_table.c.ticket_id == t["id"])
                    .order_by(ticket_event_table.c.id)
                ).mappings()
            )

    def outbox(self, purpose: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(outbox_table).where(outbox_table.c.purpose == purpose).order_by(outbox_table.c.id)
                ).mappings()
            )


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    d = Desk(db_url)
    yield d
    d.engine.dispose()


def local(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(TPE) if value is not None else None


def test_a_new_ticket_must_be_triaged_within_15_minutes(desk: Desk) -> None:
    number = desk.report()
    t = desk.ticket(number)
    assert local(t["triage_due_at"]) == at(24, 16, 15)
    assert t["response_due_at"] is None and t["resolution_due_at"] is None, "no priority, no targets yet"
    assert t["sla_status"] == "new" and t["calendar"] == "default"


def test_triage_sets_the_seed_deadlines_worked_example(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", team="network", by="Chen", now=XMAS_EVE)
    t = desk.ticket(number)
    assert local(t["response_due_at"]) == at(28, 11)
    assert local(t["resolution_due_at"]) == at(30, 16)
    assert t["triaged_by"] == "Chen" and t["team"] == "network" and t["sla_priority"] == "P3"
    snapshot = json.loads(t["sla_snapshot"])
    assert snapshot["resolution"] == {
        "target": "3d",
        "clock": "working",
        "from": "occurred_at",
        "paused_seconds": 0.0,
    }
    kinds = [e["kind"] for e in desk.events(number)][-3:]
    assert kinds == ["triaged", "deadlines_set", "commitment_set"], "the commitments follow the new standard"


def test_a_priority_written_directly_by_another_tool_is_noticed(desk: Desk) -> None:
    number = desk.report()
    with desk.engine.begin() as conn:  # an agent UI, straight into the shared table
        conn.execute(text("UPDATE tickets SET priority = 'P1' WHERE number = :n"), {"n": number})
    assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 5)) == 1
    t = desk.ticket(number)
    assert local(t["response_due_at"]) == at(24, 16, 15), "P1: 15 minutes, 24x7"
    assert local(t["resolution_due_at"]) == at(24, 20), "P1: 4 hours, 24x7"
    assert local(t["triaged_at"]) == at(24, 16, 5)
    assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 6)) == 0, "nothing changed since"


def test_occurred_at_starts_the_resolution_clock(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P2", now=XMAS_EVE)
    with desk.engine.begin() as conn:
        conn.execute(
            update(ticket_table).where(ticket_table.c.number == number).values(occurred_at=at(24, 9))
        )
    sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 1))
    t = desk.ticket(number)
    # 8 working hours from Thu 09:00: 09:00-12:00 (3 h) + 13:00-17:30 (4.5 h) = 7.5 h, then Mon 08:30+0.5 h
    assert local(t["resolution_due_at"]) == at(28, 9)
    assert local(t["response_due_at"]) == at(24, 17), "response still runs from submission"


def test_waiting_on_the_requester_pauses_the_resolution_clock(desk: Desk) -> None:
    number = desk.report(created=at(21, 9))  # Monday
    triage(desk.engine, desk.ctx, number, priority="P3", now=at(21, 9))
    before = desk.ticket(number)["resolution_due_at"]
    assert local(before) == at(24, 9)
    with desk.engine.begin() as conn:
        conn.execute(text("UPDATE tickets SET status = 'pending' WHERE number = :n"), {"n": number})
    sync_tickets(desk.engine, desk.ctx, now=at(21, 10))
    with desk.engine.begin() as conn:
        conn.execute(text("UPDATE tickets SET status = 'open' WHERE number = :n"), {"n": number})
    sync_tickets(desk.engine, desk.ctx, now=at(22, 10))  # one working day (8 h) later
    t = desk.ticket(number)
    assert t["sla_paused_seconds"] == 8 * 3600
    assert local(t["resolution_due_at"]) == at(28, 9), "Thu 09:00 + 8 working hours (Fri 25 Dec is a holiday)"
    assert local(t["first_response_at"]) == at(21, 10), "leaving 'new' is the first response"
    kinds = [e["kind"] for e in desk.events(number)]
    assert "sla_paused" in kinds and "sla_resumed" in kinds


def test_a_typhoon_day_moves_open_deadlines_and_removing_it_moves_them_back(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", now=XMAS_EVE)
    changed = set_override(desk.engine, desk.settings, "default", dt.date(2026, 12, 28), "holiday", "颱風假")
    assert changed == 1
    t = desk.ticket(number)
    assert local(t["response_due_at"]) == at(29, 11) and local(t["resolution_due_at"]) == at(31, 16)
    assert remove_override(desk.engine, desk.settings, "default", dt.date(2026, 12, 28)) == 1
    t = desk.ticket(number)
    assert local(t["response_due_at"]) == at(28, 11) and local(t["resolution_due_at"]) == at(30, 16)
    assert remove_override(desk.engine, desk.settings, "default", dt.date(2026, 12, 28)) is None


def test_a_make_up_saturday_pulls_deadlines_in(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", now=XMAS_EVE)
    set_override(desk.engine, desk.settings, "default", dt.date(2026, 12, 26), "workday", "補班")
    assert local(desk.ticket(number)["response_due_at"]) == at(26, 11)


def test_an_unknown_calendar_is_refused(desk: Desk) -> None:
    with pytest.raises(InvalidChange, match="no calendar named 'mars'"):
        set_override(desk.engine, desk.settings, "mars", dt.date(2026, 12, 28), "holiday", "x")


def teams_desk(url: str) -> Desk:
    return Desk(
        url,
        teams={"network": {"email": "net@example.com", "lead_email": "net-lead@example.com"}},
        triage={"team": "network"},
    )


def test_warning_at_75_percent_then_breach_each_sent_once(db_url: str) -> None:
    desk = teams_desk(db_url)
    try:
        number = desk.report()
        triage(desk.engine, desk.ctx, number, priority="P1", team="network", now=XMAS_EVE)
        assert check_due(desk.engine, desk.ctx, now=at(24, 16, 11)) == 0, "nothing due before 75 %"
        check_due(desk.engine, desk.ctx, now=at(24, 16, 12))  # 75 % of 15 min = 11:15
        warnings = desk.outbox("sla_warning")
        assert [w["recipient"] for w in warnings] == ["net@example.com"]
        payload = json.loads(warnings[0]["payload"])
        assert number in payload["subject"] and "response" in payload["subject"]
        assert payload["auto_submitted"] == "auto-generated"
        check_due(desk.engine, desk.ctx, now=at(24, 16, 13))
        assert len(desk.outbox("sla_warning")) == 1, "once per ticket and target"
        check_due(desk.engine, desk.ctx, now=at(24, 16, 20))
        breaches = desk.outbox("sla_breach")
        assert sorted(b["recipient"] for b in breaches) == ["net-lead@example.com", "net@example.com"]
        t = desk.ticket(number)
        assert local(t["response_breached_at"]) == at(24, 16, 15), "the breach is when the promise broke"
        check_due(desk.engine, desk.ctx, now=at(24, 16, 30))
        assert len(desk.outbox("sla_breach")) == 2
        # a later priority change recomputes the deadlines but the breach stays on record
        triage(desk.engine, desk.ctx, number, priority="P4", now=at(24, 16, 31))
        t = desk.ticket(number)
        assert local(t["response_breached_at"]) == at(24, 16, 15)
        assert local(t["response_due_at"]) == at(28, 16), "P4: 8 working hours from Thu 16:00"
    finally:
        desk.engine.dispose()


def test_an_untriaged_ticket_breaches_triage_and_the_triage_team_lead_is_told(db_url: str) -> None:
    desk = teams_desk(db_url)
    try:
        number = desk.report()
        with capture_logs() as lines:
            check_due(desk.engine, desk.ctx, now=at(24, 16, 16))
        assert local(desk.ticket(number)["triage_breached_at"]) == at(24, 16, 15)
        (logged,) = [line for line in lines if line["event"] == "sla_breach"]
        assert (logged["ticket"], logged["target"], logged["log_level"]) == (number, "triage", "warning")
        assert "net-lead@example.com" in [b["recipient"] for b in desk.outbox("sla_breach")]
        assert desk.ticket(number)["sla_next_check_at"] is None, "nothing else is due until it is triaged"
    finally:
        desk.engine.dispose()


def test_resolve_tells_the_requester_and_the_sweeper_closes_after_3_working_days(desk: Desk) -> None:
    number = desk.report()
    take(desk.engine, desk.ctx, number, by="Wang", now=at(24, 16, 5))
    resolve(desk.engine, desk.ctx, number, note="已重設密碼", by="Wang", now=XMAS_EVE.replace(minute=30))
    t = desk.ticket(number)
    assert t["status"] == "resolved" and local(t["auto_close_at"]) == at(30, 16, 30)
    (notice,) = desk.outbox("resolved_notice")
    payload = json.loads(notice["payload"])
    assert notice["recipient"] == "lin@example.com" and "已重設密碼" in payload["text"]
    assert "2026-12-30 16:30" in payload["text"] and payload["in_reply_to"] == "sla-1@example.com"
    assert sweep(desk.engine, at(30, 16, 29)) == []
    would = sweep(desk.engine, at(30, 16, 30), dry_run=True)
    assert [c.number for c in would] == [number] and desk.ticket(number)["status"] == "resolved"
    closed = sweep(desk.engine, at(30, 16, 30))
    assert [c.number for c in closed] == [number]
    t = desk.ticket(number)
    assert t["status"] == "closed" and local(t["closed_at"]) == at(30, 16, 30)
    assert sweep(desk.engine, at(31, 9)) == [], "a second pass closes nothing twice"
    assert [e["kind"] for e in desk.events(number)].count("auto_closed") == 1
    with pytest.raises(InvalidChange, match="is already closed"):
        resolve(desk.engine, desk.ctx, number, now=at(31, 9))


def test_a_reply_before_auto_close_reopens_and_the_sweeper_leaves_it(desk: Desk) -> None:
    number = desk.report()
    resolve(desk.engine, desk.ctx, number, now=XMAS_EVE)
    reply = (
        f"From: Lin <lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: Re: [{number}] ERP\r\n"
        "Message-ID: <reply-1@example.com>\r\nIn-Reply-To: <sla-1@example.com>\r\n\r\n還是不行\r\n"
    ).encode()
    insert_items(desk.engine, [RawItem("smtp", reply, envelope_from="lin@example.com")])
    while process_once(desk.engine, desk.settings):
        pass
    assert desk.ticket(number)["status"] == "open"
    sync_tickets(desk.engine, desk.ctx, now=at(28, 9))
    t = desk.ticket(number)
    assert t["auto_close_at"] is None and t["resolved_at"] is None
    assert sweep(desk.engine, at(31, 9)) == [] and desk.ticket(number)["status"] == "open"


def test_unknown_ticket(desk: Desk) -> None:
    with pytest.raises(TicketNotFound):
        triage(desk.engine, desk.ctx, "IT-209901-00001", priority="P2")


def test_only_one_sweeper_at_a_time_on_postgresql(pg_url: str) -> None:
    desk = Desk(pg_url)
    try:
        number = desk.report()
        resolve(desk.engine, desk.ctx, number, now=XMAS_EVE)
        other = make_engine(pg_url)
        try:
            with other.begin() as conn:  # another daemon is sweeping right now
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x1A7AED02})
                assert sweep(desk.engine, at(31, 9)) == [], "it waits its turn instead of sweeping too"
            assert [c.number for c in sweep(desk.engine, at(31, 9))] == [number]
        finally:
            other.dispose()
    finally:
        desk.engine.dispose()


def test_a_persons_reply_is_the_first_response_our_acknowledgement_is_not(desk: Desk) -> None:
    from intaked.store.models import message_table

    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P3", now=XMAS_EVE)
    ticket_id = desk.ticket(number)["id"]

    def out(sender: str, message_id: str, at_: dt.datetime) -> None:
        with desk.engine.begin() as conn:
            conn.execute(
                message_table.insert().values(
                    ticket_id=ticket_id,
                    direction="out",
                    channel="smtp",
                    sender=sender,
                    subject="Re: ERP",
                    body_text="...",
                    header_message_id=message_id,
                    created_at=at_,
                )
            )

    out("helpdesk@example.com", "ack.0123456789abcdef0123456789abcdef@example.com", at(24, 16, 1))
    sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 2))
    assert desk.ticket(number)["first_response_at"] is None, "our acknowledgement is no response"
    out("wang@corp.example.com", "CAF=reply-1@mail.corp.example.com", at(24, 17))
    sync_tickets(desk.engine, desk.ctx, now=at(24, 17, 1))
    t = desk.ticket(number)
    assert local(t["first_response_at"]) == at(24, 17) and t["first_response_by"] == "wang@corp.example.com"
    assert "first_response" in [e["kind"] for e in desk.events(number)]
    check_due(desk.engine, desk.ctx, now=at(28, 12))
    assert desk.ticket(number)["response_breached_at"] is None, "answered in time: no breach"


def test_tickets_are_born_with_their_triage_deadline(desk: Desk) -> None:
    raw = b"From: a@example.com\r\nSubject: VPN\r\nMessage-ID: <born@example.com>\r\n\r\nx\r\n"
    insert_items(desk.engine, [RawItem("smtp", raw, envelope_from="a@example.com")])
    process_once(desk.engine, desk.settings)
    with desk.engine.connect() as conn:
        t = conn.execute(select(ticket_table)).mappings().one()
    assert t["triage_due_at"] - t["created_at"] == dt.timedelta(minutes=15)
    assert t["sla_next_check_at"] == t["triage_due_at"] and t["sla_status"] == "new"
    assert sync_tickets(desk.engine, desk.ctx) == 0, "nothing left for the tracker to catch up on"


def test_a_team_written_directly_by_another_tool_moves_the_deadlines_to_its_calendar(db_url: str) -> None:
    """Only ``tickets.team`` changes (nothing else): the tracker notices, and the deadlines are
    those of the new team's calendar."""
    desk = Desk(
        db_url,
        calendars={"default": {}, "night": {"hours": ["20:00-23:00"]}},
        teams={"network": {"email": "net@example.com"}, "factory": {"calendar": "night"}},
    )
    try:
        number = desk.report()
        triage(desk.engine, desk.ctx, number, priority="P3", team="network", by="Chen", now=XMAS_EVE)
        before = desk.ticket(number)
        assert before["calendar"] == "default" and local(before["response_due_at"]) == at(28, 11)
        with desk.engine.begin() as conn:  # an agent UI moves it to the night shift, nothing else
            conn.execute(text("UPDATE tickets SET team = 'factory' WHERE number = :n"), {"n": number})
        assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 30)) == 1
        after = desk.ticket(number)
        assert after["calendar"] == "night"
        # P3 response: 4 working hours of the night calendar from Thu 24 Dec 16:00: Thu
        # 20:00-23:00 gives 3, Fri 25 Dec is Constitution Day, the weekend is off: Mon 21:00.
        assert local(after["response_due_at"]) == at(28, 21)
        last, following = desk.events(number)[-2:]
        assert last["kind"] == "deadlines_set" and json.loads(last["detail"])["calendar"] == "night"
        assert following["kind"] == "commitment_set", "work has not started: the commitments follow"
        assert sync_tickets(desk.engine, desk.ctx, now=at(24, 16, 31)) == 0, "nothing changed since"
    finally:
        desk.engine.dispose()
