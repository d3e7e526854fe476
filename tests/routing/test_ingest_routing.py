"""Routing on the ingest path: real mail through the real parser into the real store (SQLite and
PostgreSQL): the ticket's routing columns, the directory enrichment and the ``routed`` event."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.config import Settings
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import ticket_event_table, ticket_table
from tests.support.daemon import make_settings

OUR_MTA = "mx1.corp.example.com.tw"
RULES = [
    {
        "name": "production-down",
        "keywords": ["產線停工", "全廠"],
        "category": "incident",
        "team": "field_service_apac",
        "suggested_priority": "P1",
    },
    {"name": "printer", "keywords": ["印表機"], "category": "incident", "suggested_priority": "P3"},
    {"name": "plant-site", "site": "Tainan", "team": "field_service_tn"},
]
DIRECTORY = (
    "name,email,phone,mobile,extension,department,site,manager\n"
    "林美華,mei.lin@corp.example.com.tw,02-2345-6789,0912-345-678;0922 333 444,1234,製造部,Tainan,王大明\n"
)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    directory = tmp_path / "people.csv"
    directory.write_text(DIRECTORY, encoding="utf-8")
    return make_settings(
        db_url,
        routing={"rules": RULES},
        directory={"path": str(directory)},
        trust={"internal_domains": ["corp.example.com.tw"], "authserv_id": OUR_MTA},
    )


def raw_mail(sender: str, subject: str, body: str, *, auth: Sequence[str] = (), mid: str = "m1") -> bytes:
    headers = [f"Authentication-Results: {value}" for value in auth]
    headers += [
        f"From: {sender}",
        "To: helpdesk@corp.example.com.tw",
        f"Subject: {subject}",
        f"Message-ID: <{mid}@example>",
        "Content-Type: text/plain; charset=utf-8",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def ingest(
    engine: Engine, settings: Settings, raw: bytes, envelope_from: str | None = None
) -> dict[str, Any]:
    insert_items(
        engine,
        [RawItem("smtp", raw, envelope_from=envelope_from, envelope_to=["helpdesk@corp.example.com.tw"])],
    )
    (outcome,) = process_once(engine, settings)
    with engine.connect() as conn:
        row = (
            conn.execute(select(ticket_table).where(ticket_table.c.id == outcome.ticket_id)).mappings().one()
        )
        events = (
            conn.execute(
                select(ticket_event_table.c.detail).where(
                    ticket_event_table.c.ticket_id == outcome.ticket_id, ticket_event_table.c.kind == "routed"
                )
            )
            .scalars()
            .all()
        )
    return {**row, "routed_events": [json.loads(e) for e in events]}


def test_internal_mail_with_spf_pass_is_a_trusted_p1_enriched_from_the_directory(
    engine: Engine, settings: Settings
) -> None:
    raw = raw_mail(
        "mei.lin@corp.example.com.tw",
        "緊急",
        "三廠B棟產線停工，請立即協助",
        auth=[f"{OUR_MTA}; spf=pass smtp.mailfrom=mei.lin@corp.example.com.tw; dkim=none"],
    )
    ticket = ingest(engine, settings, raw, envelope_from="mei.lin@corp.example.com.tw")
    assert ticket["priority"] is None, "a suggestion never sets the priority"
    assert ticket["category"] == "incident"
    assert ticket["team"] == "field_service_apac"
    assert ticket["suggested_priority"] == "P1"
    assert ticket["suggested_by"] == "rule:production-down"
    assert ticket["suggestion_trusted"] is True
    assert ticket["requester_department"] == "製造部" and ticket["requester_site"] == "Tainan"
    assert ticket["requester_name"] == "林美華", "filled from the directory: the From: had no name"
    assert ticket["requester_phone"] == "+886223456789"
    (detail,) = ticket["routed_events"]
    assert detail["category"] == "incident" and detail["team"] == "field_service_apac"
    assert detail["suggested_priority"] == "P1" and detail["trusted"] is True
    assert detail["rules"] == {
        "category": "production-down",
        "team": "production-down",
        "suggested_priority": "production-down",
    }
    assert "spf=pass" in detail["trust_reason"]


def test_spoofed_production_stop_from_outside_is_suggested_p1_but_not_trusted(
    engine: Engine, settings: Settings
) -> None:
    raw = raw_mail(
        "attacker@evil.example",
        "產線停工",
        "全廠停機 請立刻處理",
        auth=[f"{OUR_MTA}; spf=pass smtp.mailfrom=attacker@evil.example; dkim=pass header.d=evil.example"],
    )
    ticket = ingest(engine, settings, raw, envelope_from="attacker@evil.example")
    assert ticket["suggested_priority"] == "P1"
    assert ticket["suggestion_trusted"] is False
    assert ticket["requester_department"] is None and ticket["requester_name"] is None
    assert ticket["routed_events"][0]["trusted"] is False


def test_forged_header_from_outside_claiming_our_mta_does_not_make_it_trusted(
    engine: Engine, settings: Settings
) -> None:
    raw = raw_mail(
        "mei.lin@corp.example.com.tw",
        "全廠停電",
        "",
        auth=[
            f"{OUR_MTA}; spf=fail smtp.mailfrom=corp.example.com.tw; dkim=none",  # our MTA's, on top
            f"{OUR_MTA}; spf=pass smtp.mailfrom=corp.example.com.tw; dkim=pass header.d=corp.example.com.tw",
        ],
    )
    ticket = ingest(engine, settings, raw, envelope_from="mei.lin@corp.example.com.tw")
    assert ticket["suggested_priority"] == "P1" and ticket["suggestion_trusted"] is False


def test_without_a_suggestion_nothing_is_trusted_and_the_team_stays_unset(
    engine: Engine, settings: Settings
) -> None:
    raw = raw_mail(
        "mei.lin@corp.example.com.tw",
        "印表機卡紙",
        "三樓",
        auth=[f"{OUR_MTA}; dkim=pass header.d=corp.example.com.tw"],
        mid="m2",
    )
    ticket = ingest(engine, settings, raw)
    assert (ticket["category"], ticket["suggested_priority"], ticket["suggestion_trusted"]) == (
        "incident",
        "P3",
        True,
    )
    assert ticket["team"] == "field_service_tn", "a later rule set the team from the directory's site"
    question = raw_mail("someone@else.example", "你好", "請問一下", mid="m3")
    plain = ingest(engine, settings, question)
    assert plain["team"] is None and plain["category"] is None and plain["suggested_priority"] is None
    assert plain["suggested_by"] is None and plain["suggestion_trusted"] is False
    assert plain["routed_events"] == [], "nothing matched and no directory entry: no routed event"


def test_no_rules_configured_routes_nothing(engine: Engine, db_url: str) -> None:
    settings = make_settings(db_url)
    ticket = ingest(engine, settings, raw_mail("a@b.example", "產線停工", "全廠"))
    assert (ticket["category"], ticket["team"], ticket["suggested_priority"]) == (None, None, None)
    assert ticket["suggestion_trusted"] is False and ticket["routed_events"] == []


def test_a_name_in_the_mail_is_kept(engine: Engine, settings: Settings) -> None:
    ticket = ingest(engine, settings, raw_mail("Mei <MEI.LIN@corp.example.com.tw>", "印表機", "x"))
    assert ticket["requester_name"] == "Mei"
    assert ticket["requester_department"] == "製造部"
