"""The security tests' desk: a store (SQLite and PostgreSQL) with a routing rule that files
"資安" mail as a security incident, the security team and its on-call, the chain per level, a
P1 policy paging the QRC's on-call, and helpers that file a mail report and read what was queued."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from intaked.config import Settings
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import outbox_table, ticket_event_table, ticket_table
from tests.twilio.conftest import twilio_settings

TAIPEI = dt.timezone(dt.timedelta(hours=8))
FRIDAY_17 = dt.datetime(2026, 12, 4, 17, 0, tzinfo=TAIPEI)  # a Friday, after working hours
SOC = "soc@example.com"
SOC_LEAD = "soc-lead@example.com"
CHIEF = "+886922000001"  # the QRC's on-call (組長)
SOC_ON_CALL = "+886922000009"  # the security team's on-call: paged for level 4
SECTIONS: dict[str, Any] = {
    "outbound_mail": {"from_address": "helpdesk@example.com"},
    "teams": {"security": {"email": SOC, "lead_email": SOC_LEAD, "oncall": "soc_duty"}},
    "routing": {"rules": [{"name": "infosec", "keywords": ["資安"], "category": "security_incident"}]},
    "people": {
        "chief": {"phone": CHIEF, "email": "chief@example.com"},
        "huang": {"phone": SOC_ON_CALL, "email": "huang@example.com"},
    },
    "oncall": {"qrc_duty": {"people": ["chief"]}, "soc_duty": {"people": ["huang"]}},
    "paging": {"policies": {"P1": {"repeat": 1, "steps": [{"targets": [{"oncall": "qrc_duty"}]}]}}},
    "security": {
        "levels": {
            "2": {"notify": ["section-chief@example.com"]},
            "3": {"notify": ["deputy@example.com", "security"]},
            "4": {"notify": ["director@example.com", "chief"], "page": True},
        }
    },
}


class Desk:
    """A migrated store and the settings above; mail reports filed the way intaked files them."""

    def __init__(self, url: str, **overrides: Any) -> None:
        self.engine = make_engine(url)
        upgrade(self.engine)
        sections = {key: dict(value) for key, value in SECTIONS.items()}
        sections["database"] = {"url": url}
        for key, value in overrides.items():
            sections.setdefault(key, {}).update(value)
        self.settings: Settings = twilio_settings(**sections)
        self.count = 0

    def report(self, subject: str = "資安事件：網站遭篡改", created: dt.datetime = FRIDAY_17) -> str:
        self.count += 1
        raw = (
            f"From: Lin <lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <sec-{self.count}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "首頁出現不明文字。\r\n"
        ).encode()
        insert_items(self.engine, [RawItem("smtp", raw, envelope_from="lin@example.com")])
        while process_once(self.engine, self.settings):
            pass
        with self.engine.begin() as conn:
            number = str(
                conn.execute(
                    select(ticket_table.c.number).order_by(ticket_table.c.id.desc()).limit(1)
                ).scalar_one()
            )
            conn.execute(
                update(ticket_table).where(ticket_table.c.number == number).values(created_at=created)
            )
        return number

    def ticket(self, number: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(ticket_table).where(ticket_table.c.number == number)).mappings().one()

    def mails(self, purpose: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox_table).where(outbox_table.c.purpose == purpose).order_by(outbox_table.c.id)
            ).mappings()
            return [{**row, "payload": json.loads(row["payload"])} for row in rows]

    def events(self, number: str, kind: str) -> list[dict[str, Any]]:
        t, e = ticket_table, ticket_event_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(e).join(t, t.c.id == e.c.ticket_id).where(t.c.number == number, e.c.kind == kind)
            ).mappings()
            return [{**row, "detail": json.loads(row["detail"])} for row in rows]


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    desk = Desk(db_url)
    yield desk
    desk.engine.dispose()


def engine_of(desk: Desk) -> Engine:
    return desk.engine
