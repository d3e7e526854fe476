"""A major incident's status updates reach every linked requester once (mail at the SMTP sink,
SMS at the fake phone network for hotline mobile callers), however often the outbox runs; and
resolving the incident (by intaked or by another tool writing the status) resolves its open linked
tickets with one resolved notice each; a linked ticket settled on its own hears no more (SQLite
and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from intaked.config import Settings
from intaked.incidents.links import LinkRefused
from intaked.incidents.updates import send_update
from intaked.outbound.dispatcher import dispatch_once
from intaked.sla.context import load_context
from intaked.sla.tracker import sync_tickets
from intaked.store.models import outbox_table, ticket_event_table, ticket_table
from intaked.tickets.lifecycle import InvalidChange, resolve, resolved_elsewhere
from tests.paging import test_major_incidents as grouping
from tests.paging.test_major_incidents import T0, grouping_settings, report, send_everything
from tests.support.phone import FakePhoneNetwork
from tests.support.smtpsink import SmtpSink

engine = grouping.engine
phone = grouping.phone
_phone_session = grouping._phone_session
twilio_api_url = grouping.twilio_api_url

MOBILE, LANDLINE = "+886955000111", "+886227000111"


@pytest.fixture
def settings(tmp_path: Path, twilio_api_url: str, sink: SmtpSink) -> Settings:
    return grouping_settings(tmp_path, twilio_api_url, mail_port=sink.port)


def incident_of_thirty(engine: Engine, settings: Settings) -> tuple[str, list[int]]:
    """A paged major incident with 30 linked mail reports and two linked hotline calls."""
    major = report(engine, settings, T0)
    linked = [report(engine, settings, T0 + dt.timedelta(seconds=10 * n)) for n in range(1, 31)]
    linked.append(report(engine, settings, T0 + dt.timedelta(minutes=6), caller=MOBILE))
    linked.append(report(engine, settings, T0 + dt.timedelta(minutes=7), caller=LANDLINE))
    with engine.connect() as conn:
        rows = conn.execute(select(ticket_table.c.id, ticket_table.c.major_incident_id)).all()
        number = conn.execute(select(ticket_table.c.number).where(ticket_table.c.id == major)).scalar_one()
    assert {row.id: row.major_incident_id for row in rows} == {major: None, **dict.fromkeys(linked, major)}
    return str(number), [major, *linked]


def send_mail(engine: Engine, settings: Settings) -> None:
    while dispatch_once(engine, settings):
        pass


def mails_at_sink(sink: SmtpSink, subject_part: str) -> list[Any]:
    found = [email.message_from_bytes(m.raw, policy=email.policy.default) for m in sink.messages()]
    return [m for m in found if subject_part in str(m["Subject"])]


def test_an_update_reaches_every_linked_requester_once(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork, sink: SmtpSink
) -> None:
    number, ids = incident_of_thirty(engine, settings)
    sent = send_update(engine, settings, number, "備援線路已啟用，預計 30 分鐘內恢復", by="chen")
    assert (sent.update, sent.mails, sent.sms) == (1, 31, 1)
    for _ in range(2):
        send_mail(engine, settings)
        send_everything(engine, settings)
    updates = mails_at_sink(sink, "重大事件進度更新")
    assert len(updates) == 31
    assert sorted(m["To"].addresses[0].addr_spec for m in updates) == sorted(
        f"user{n:02d}@corp.example.com.tw" for n in range(1, 32)
    )
    assert all("備援線路已啟用" in m.get_body().get_content() for m in updates)
    sms = [r.get("Body") or "" for r in phone.creates("Messages") if r.get("To") == MOBILE]
    assert sms == [f"[{number} 進度 / update] 備援線路已啟用，預計 30 分鐘內恢復"]
    with engine.connect() as conn:
        kinds = conn.execute(
            select(ticket_event_table.c.ticket_id, ticket_event_table.c.detail).where(
                ticket_event_table.c.kind == "incident_update"
            )
        ).all()
    assert [(row.ticket_id, json.loads(row.detail)["text"]) for row in kinds] == [
        (ids[0], "備援線路已啟用，預計 30 分鐘內恢復")
    ]
    again = send_update(engine, settings, number, "已恢復", by="chen")
    assert again.update == 2 and again.mails == 31


def test_an_update_on_a_linked_ticket_or_without_text_is_refused(engine: Engine, settings: Settings) -> None:
    number, ids = incident_of_thirty(engine, settings)
    with engine.connect() as conn:
        linked = conn.execute(select(ticket_table.c.number).where(ticket_table.c.id == ids[1])).scalar_one()
    with pytest.raises(LinkRefused, match=f"{linked} is linked to {number}: send the update on {number}"):
        send_update(engine, settings, linked, "x", by="chen")
    with pytest.raises(LinkRefused, match="1 to 1000 characters"):
        send_update(engine, settings, number, "  ", by="chen")
    with engine.connect() as conn:
        assert (
            conn.execute(select(outbox_table).where(outbox_table.c.purpose == "incident_update")).first()
            is None
        )


def test_resolving_the_incident_resolves_its_linked_tickets_with_one_notice_each(
    engine: Engine, settings: Settings, sink: SmtpSink
) -> None:
    number, ids = incident_of_thirty(engine, settings)
    with engine.connect() as conn:
        first_linked = conn.execute(
            select(ticket_table.c.number).where(ticket_table.c.id == ids[1])
        ).scalar_one()
    resolve(engine, load_context(engine, settings), first_linked, by="chen", now=T0 + dt.timedelta(minutes=8))
    resolve(engine, load_context(engine, settings), number, note="主機已恢復", by="chen")
    with pytest.raises(InvalidChange):
        resolve(engine, load_context(engine, settings), number, by="chen")
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(ticket_table.c.id, ticket_table.c.status)).all())
        resolved = conn.execute(
            select(ticket_event_table.c.ticket_id, ticket_event_table.c.detail).where(
                ticket_event_table.c.kind == "resolved"
            )
        ).all()
    assert set(statuses.values()) == {"resolved"}
    by_major = [row.ticket_id for row in resolved if json.loads(row.detail).get("major_incident") == number]
    assert sorted(by_major) == sorted(ids[2:]), "the one resolved earlier is not resolved again"
    for _ in range(2):
        send_mail(engine, settings)
    notices = mails_at_sink(sink, "案件已解決")
    assert len(notices) == 31, "the 31 with an e-mail address, once each (the hotline callers have none)"
    assert len({m["To"].addresses[0].addr_spec for m in notices}) == 31


def test_an_update_leaves_out_a_linked_ticket_settled_on_its_own(
    engine: Engine, settings: Settings, sink: SmtpSink
) -> None:
    number, ids = incident_of_thirty(engine, settings)
    with engine.connect() as conn:
        settled = conn.execute(select(ticket_table.c.number).where(ticket_table.c.id == ids[1])).scalar_one()
    resolve(engine, load_context(engine, settings), settled, by="chen", now=T0 + dt.timedelta(minutes=8))
    sent = send_update(engine, settings, number, "備援線路已啟用", by="chen")
    assert (sent.mails, sent.sms) == (30, 1), "not the requester whose ticket was resolved on its own"
    resolve(engine, load_context(engine, settings), number, note="主機已恢復", by="chen")
    after = send_update(engine, settings, number, "根因：UPS 故障，已更換", by="chen")
    assert (after.mails, after.sms) == (30, 1), "those resolved with the incident still hear of it"
    send_mail(engine, settings)
    told = {m["To"].addresses[0].addr_spec for m in mails_at_sink(sink, "重大事件進度更新")}
    assert len(told) == 30 and "user02@corp.example.com.tw" not in told


def test_a_resolution_written_by_another_tool_resolves_the_linked_tickets(
    engine: Engine, settings: Settings, sink: SmtpSink
) -> None:
    number, ids = incident_of_thirty(engine, settings)
    context = load_context(engine, settings)
    sync_tickets(engine, context, on_resolved=resolved_elsewhere)
    with engine.begin() as conn:  # the agent UI writes the status
        conn.execute(update(ticket_table).where(ticket_table.c.id == ids[0]).values(status="resolved"))
    sync_tickets(engine, context, on_resolved=resolved_elsewhere)
    sync_tickets(engine, context, on_resolved=resolved_elsewhere)  # again: nothing more
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(ticket_table.c.id, ticket_table.c.status)).all())
        resolved = conn.execute(
            select(ticket_event_table.c.ticket_id, ticket_event_table.c.detail).where(
                ticket_event_table.c.kind == "resolved"
            )
        ).all()
    assert {statuses[i] for i in ids} == {"resolved"}
    assert sorted(
        r.ticket_id for r in resolved if json.loads(r.detail).get("major_incident") == number
    ) == sorted(ids[1:])
    for _ in range(2):
        send_mail(engine, settings)
    notices = mails_at_sink(sink, "案件已解決")
    assert len(notices) == 30, (
        "each linked requester with an address once (the incident's own: the tool's job)"
    )
