"""After a major incident: resolving a P1/P2 opens exactly one RCA follow-up for the QRC, due
``paging.rca_due`` (5 working days) later; a P3 opens none, and neither does resolving again."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from intaked.reports.formats import as_html, as_text
from intaked.reports.service_level import build_report
from intaked.sla.tracker import sync_tickets
from intaked.store.models import ticket_table
from intaked.tickets.lifecycle import resolve, triage
from intaked.tickets.rca import open_rca_followups
from tests.sla.test_tracker import Desk, at, local

THURSDAY = at(3, 10)  # Thursday 3 December 2026, 10:00 in Taipei


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    d = Desk(db_url, teams={"qrc": {"email": "qrc@example.com"}})
    yield d
    d.engine.dispose()


def incident(desk: Desk, priority: str = "P1") -> str:
    number = desk.report(created=THURSDAY - dt.timedelta(hours=1))
    triage(desk.engine, desk.ctx, number, priority=priority, by="fs", now=THURSDAY - dt.timedelta(minutes=50))
    return number


def rca_tickets(desk: Desk) -> list[Any]:
    with desk.engine.connect() as conn:
        query = select(ticket_table).where(ticket_table.c.subject.like("RCA: %")).order_by(ticket_table.c.id)
        return list(conn.execute(query).mappings())


def test_resolving_a_p1_opens_one_rca_due_in_5_working_days(desk: Desk) -> None:
    number = incident(desk)
    resolve(desk.engine, desk.ctx, number, by="chen", now=THURSDAY)
    (rca,) = rca_tickets(desk)
    parent = desk.ticket(number)
    assert rca["subject"] == f"RCA: {parent['subject']}" and rca["parent_id"] == parent["id"]
    assert (rca["category"], rca["team"], rca["channel"], rca["status"]) == (
        "service_request",
        "qrc",
        "internal",
        "new",
    )
    # Fri 4, Mon 7, Tue 8, Wed 9, Thu 10: the weekend does not count
    assert local(rca["commitment_at"]) == at(10, 10) == local(rca["first_commitment_at"])
    (opened,) = [e for e in desk.events(number) if e["kind"] == "rca_opened"]
    assert json.loads(opened["detail"])["rca"] == rca["number"]


def test_resolving_a_p3_opens_none(desk: Desk) -> None:
    number = incident(desk, "P3")
    resolve(desk.engine, desk.ctx, number, by="chen", now=THURSDAY)
    assert rca_tickets(desk) == []


def test_resolving_again_after_a_reopen_opens_no_second_one(desk: Desk) -> None:
    number = incident(desk)
    resolve(desk.engine, desk.ctx, number, by="chen", now=THURSDAY)
    with desk.engine.begin() as conn:  # reopened (a reply, or an agent UI)
        conn.execute(update(ticket_table).where(ticket_table.c.number == number).values(status="open"))
    sync_tickets(desk.engine, desk.ctx, now=THURSDAY + dt.timedelta(hours=1), on_resolved=open_rca_followups)
    resolve(desk.engine, desk.ctx, number, by="chen", now=THURSDAY + dt.timedelta(hours=2))
    assert len(rca_tickets(desk)) == 1


def test_a_tool_writing_resolved_opens_the_rca_through_the_sync(desk: Desk) -> None:
    number = incident(desk, "P2")
    with desk.engine.begin() as conn:
        conn.execute(update(ticket_table).where(ticket_table.c.number == number).values(status="resolved"))
    sync_tickets(desk.engine, desk.ctx, now=THURSDAY, on_resolved=open_rca_followups)
    sync_tickets(
        desk.engine, desk.ctx, now=THURSDAY + dt.timedelta(minutes=1), on_resolved=open_rca_followups
    )
    (rca,) = rca_tickets(desk)
    assert local(rca["commitment_at"]) == at(10, 10)


def test_the_service_level_report_lists_the_rca(desk: Desk) -> None:
    number = incident(desk)
    resolve(desk.engine, desk.ctx, number, by="chen", now=THURSDAY)
    (rca,) = rca_tickets(desk)
    report = build_report(desk.engine, desk.settings, dt.date(2026, 11, 30), dt.date(2026, 12, 6))
    assert report["rca"] == [
        {
            "number": rca["number"],
            "incident": number,
            "due": "2026-12-10T10:00:00+08:00",
            "status": "new",
            "overdue": False,
        }
    ]
    later = build_report(desk.engine, desk.settings, dt.date(2026, 12, 14), dt.date(2026, 12, 20))
    assert later["rca"][0]["overdue"] is True  # still open after its due time
    assert f"{rca['number']}  {number}  2026-12-10 10:00" in as_text(later)
    assert f"<td>{rca['number']}</td><td>{number}</td>" in as_html(later)
