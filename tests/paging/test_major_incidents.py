"""One outage pages once (issue 19): while a P1/P2 page is live, trusted reports the same routing
rule marked within ``paging.group_window`` are linked to the paged ticket instead of paging again,
and the commander gets one SMS per ``paging.group_notify_interval``, counted at the fake phone
network. Real mail through the real parser into the real store (SQLite and PostgreSQL), and a
fake clock for the windows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from intaked.config import Settings
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.paging.grouping import GROUPED_PURPOSE
from intaked.paging.outcomes import attempt_updated
from intaked.store.models import call_table, outbox_table, page_table, ticket_table
from intaked.tickets.filing import page_trusted
from intaked.twilio.client import TwilioClient
from intaked.twilio.dispatcher import TwilioSender
from intaked.twilio.rate import TokenBucket
from tests.routing.test_ingest_routing import DIRECTORY, OUR_MTA, RULES, raw_mail
from tests.support.phone import FakePhoneNetwork
from tests.twilio import conftest as twilio_fixtures
from tests.twilio.conftest import twilio_settings

engine = twilio_fixtures.engine
phone = twilio_fixtures.phone
_phone_session = twilio_fixtures._phone_session
twilio_api_url = twilio_fixtures.twilio_api_url

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
CHEN = "+886911111111"
DOMAIN = "corp.example.com.tw"
POWER_RULE = {
    "name": "power-cut",
    "keywords": ["機房斷電"],
    "category": "incident",
    "suggested_priority": "P1",
}


def grouping_settings(tmp_path: Path, api_url: str, mail_port: int = 25, **paging: Any) -> Settings:
    """Two P1 rules (production-down, power-cut), trusted internal mail, QRC duty chen by SMS."""
    directory = tmp_path / "people.csv"
    directory.write_text(DIRECTORY, encoding="utf-8")
    return twilio_settings(
        api_url,
        routing={"rules": [*RULES, POWER_RULE]},
        directory={"path": str(directory)},
        trust={"internal_domains": [DOMAIN], "authserv_id": OUR_MTA},
        outbound_mail={"from_address": "helpdesk@example.com", "host": "127.0.0.1", "port": mail_port},
        people={"chen": {"phone": CHEN}},
        oncall={"qrc_duty": {"people": ["chen"]}},
        paging={
            "policies": {
                "P1": {"repeat": 1, "steps": [{"targets": [{"oncall": "qrc_duty"}], "channels": ["sms"]}]}
            },
            **paging,
        },
    )


@pytest.fixture
def settings(tmp_path: Path, twilio_api_url: str) -> Settings:
    return grouping_settings(tmp_path, twilio_api_url)


def mail(index: int, subject: str = "產線停工", body: str = "三廠B棟產線停工，請立即協助") -> bytes:
    sender = f"user{index:02d}@{DOMAIN}"
    auth = [f"{OUR_MTA}; spf=pass smtp.mailfrom={sender}"]
    return raw_mail(sender, subject, body, auth=auth, mid=f"m{index}")


def ingest_all(engine: Engine, settings: Settings, raws: list[bytes]) -> None:
    items = [
        RawItem("smtp", raw, envelope_from=None, envelope_to=["helpdesk@corp.example.com.tw"]) for raw in raws
    ]
    insert_items(engine, items)
    while process_once(engine, settings):
        pass


def tickets(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(ticket_table).order_by(ticket_table.c.id)).mappings())


def pages(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(page_table).order_by(page_table.c.id)).mappings())


def grouped_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        query = (
            select(outbox_table).where(outbox_table.c.purpose == GROUPED_PURPOSE).order_by(outbox_table.c.id)
        )
        return list(conn.execute(query).mappings())


def send_everything(engine: Engine, settings: Settings) -> None:
    """What the outbox holds and is due goes out to the fake phone network."""
    sender = TwilioSender(
        engine,
        settings,
        TwilioClient(settings.twilio),
        TokenBucket(1000.0, 1000.0),
        on_attempt=attempt_updated,
    )
    while sender.dispatch_once("sms"):
        pass


def grouped_at_chen(phone: FakePhoneNetwork) -> list[str]:
    bodies = [r.get("Body") or "" for r in phone.creates("Messages") if r.get("To") == CHEN]
    return [body for body in bodies if body.startswith("[重大事件]")]


def report(
    engine: Engine,
    settings: Settings,
    at: dt.datetime,
    *,
    rule: str = "production-down",
    site: str | None = None,
    caller: str | None = None,
) -> int:
    """A trusted P1 report filed at ``at`` (the fake clock), paged or grouped as filing does; a
    hotline call from ``caller`` (no e-mail address) if given."""
    with engine.begin() as conn:
        count = len(conn.execute(select(ticket_table.c.id)).all())
        ticket_id = int(
            conn.execute(
                insert(ticket_table)
                .values(
                    number=f"IT-202611-{count + 1:05d}",
                    status="new",
                    channel="phone" if caller else "email",
                    subject=f"產線停工 #{count + 1}",
                    requester_email=None if caller else f"user{count + 1:02d}@{DOMAIN}",
                    requester_phone=caller,
                    requester_site=site,
                    suggested_priority="P1",
                    suggested_by=f"rule:{rule}",
                    suggestion_trusted=True,
                    created_at=at,
                    updated_at=at,
                )
                .returning(ticket_table.c.id)
            ).scalar_one()
        )
        if caller:
            call = {"from_number": caller, "to_number": "+886225551234", "menu_choice": "1"}
            values = {"call_sid": f"CA{ticket_id:032d}", "ticket_id": ticket_id, "started_at": at, **call}
            conn.execute(insert(call_table).values(**values, created_at=at, updated_at=at))
        page_trusted(conn, settings, ticket_id, "P1", f"rule:{rule}", at)
    return ticket_id


def test_thirty_one_reports_of_a_stopped_line_page_once_and_link_thirty(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    ingest_all(engine, settings, [mail(0)])
    ingest_all(engine, settings, [mail(index) for index in range(1, 31)])
    first, *linked = tickets(engine)
    (page,) = pages(engine)
    assert page["ticket_id"] == first["id"] and first["major_incident_id"] is None
    assert len(linked) == 30 and {row["major_incident_id"] for row in linked} == {first["id"]}
    assert len({row["number"] for row in linked}) == 30, "each report keeps its own number"
    with engine.connect() as conn:
        acks = conn.execute(select(outbox_table.c.ticket_id).where(outbox_table.c.purpose == "ack")).scalars()
        assert sorted(acks) == [row["id"] for row in [first, *linked]], "and its own acknowledgement"
    (row,) = grouped_rows(engine)
    body = json.loads(row["payload"])["body"]
    assert row["recipient"] == CHEN and row["next_attempt_at"] > page["started_at"]
    assert f"30 more reports linked to {first['number']}, latest: 產線停工" in body
    with engine.begin() as conn:  # the interval ends: the SMS is due
        conn.execute(update(outbox_table).where(outbox_table.c.id == row["id"]).values(next_attempt_at=T0))
    send_everything(engine, settings)
    send_everything(engine, settings)
    assert grouped_at_chen(phone) == [body]


def test_one_grouped_sms_per_interval_at_the_fake_network(
    engine: Engine, settings: Settings, phone: FakePhoneNetwork
) -> None:
    major = report(engine, settings, T0)
    for minutes in (1, 2, 3):
        report(engine, settings, T0 + dt.timedelta(minutes=minutes))
    report(engine, settings, T0 + dt.timedelta(minutes=6))
    assert len(pages(engine)) == 1
    rows = grouped_rows(engine)
    assert [row["next_attempt_at"] for row in rows] == [
        T0 + dt.timedelta(minutes=5),
        T0 + dt.timedelta(minutes=10),
    ]
    send_everything(engine, settings)
    send_everything(engine, settings)
    number = tickets(engine)[0]["number"]
    assert grouped_at_chen(phone) == [
        f"[重大事件] {number} 另有 3 件通報併入，最新：產線停工 #4 / "
        f"3 more reports linked to {number}, latest: 產線停工 #4",
        f"[重大事件] {number} 另有 1 件通報併入，最新：產線停工 #5 / "
        f"1 more report linked to {number}, latest: 產線停工 #5",
    ]
    assert all(row["major_incident_id"] == major for row in tickets(engine)[1:])


def test_a_report_outside_the_window_or_of_another_rule_pages_anew(
    engine: Engine, settings: Settings
) -> None:
    major = report(engine, settings, T0)
    linked = report(engine, settings, T0 + dt.timedelta(minutes=20))
    other_rule = report(engine, settings, T0 + dt.timedelta(minutes=21), rule="power-cut")
    late = report(engine, settings, T0 + dt.timedelta(minutes=51))  # 31 minutes after the latest report
    assert [page["ticket_id"] for page in pages(engine)] == [major, other_rule, late]
    by_id = {row["id"]: row["major_incident_id"] for row in tickets(engine)}
    assert by_id == {major: None, linked: major, other_rule: None, late: None}


def test_grouping_by_site_pages_each_site_once(tmp_path: Path, twilio_api_url: str, engine: Engine) -> None:
    settings = grouping_settings(tmp_path, twilio_api_url, group_by_site=True)
    tainan = report(engine, settings, T0, site="Tainan")
    hsinchu = report(engine, settings, T0 + dt.timedelta(minutes=1), site="Hsinchu")
    report(engine, settings, T0 + dt.timedelta(minutes=2), site="Tainan")
    assert [page["ticket_id"] for page in pages(engine)] == [tainan, hsinchu]
    assert [row["major_incident_id"] for row in tickets(engine)] == [None, None, tainan]
