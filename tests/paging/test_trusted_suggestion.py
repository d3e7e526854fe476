"""A trusted suggested P1 arriving by mail pages QRC in the ingest transaction, marked
unconfirmed; the same words from outside wake no one (real parser, real store, both databases)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from intaked.config import Settings
from intaked.store.models import outbox_table, page_table
from tests.paging.test_engine import CONFIG
from tests.routing.test_ingest_routing import DIRECTORY, OUR_MTA, RULES, engine, ingest, raw_mail
from tests.support.daemon import make_settings

__all__ = ["engine"]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    directory = tmp_path / "people.csv"
    directory.write_text(DIRECTORY, encoding="utf-8")
    return make_settings(
        db_url,
        routing={"rules": RULES},
        directory={"path": str(directory)},
        trust={"internal_domains": ["corp.example.com.tw"], "authserv_id": OUR_MTA},
        people=CONFIG["people"],
        oncall=CONFIG["oncall"],
        paging=CONFIG["paging"],
    )


def pages(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(select(page_table)).mappings()]


def page_texts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox_table.c.payload).where(outbox_table.c.kind == "sms")).scalars()
        return [json.loads(payload)["body"] for payload in rows]


def test_internal_production_stop_pages_at_once_unconfirmed(engine: Engine, settings: Settings) -> None:
    raw = raw_mail(
        "mei.lin@corp.example.com.tw",
        "緊急",
        "三廠B棟產線停工，請立即協助",
        auth=[f"{OUR_MTA}; spf=pass smtp.mailfrom=mei.lin@corp.example.com.tw"],
    )
    ticket = ingest(engine, settings, raw, envelope_from="mei.lin@corp.example.com.tw")
    (page,) = pages(engine)
    assert page["ticket_id"] == ticket["id"] and page["unconfirmed"] is True
    assert page["reason"] == "trusted suggestion (rule:production-down)"
    (text,) = page_texts(engine)
    assert text.startswith(f"[P1 未確認] {ticket['number']} 緊急 / 林美華")


def test_the_same_words_from_outside_wake_no_one(engine: Engine, settings: Settings) -> None:
    raw = raw_mail(
        "attacker@evil.example",
        "產線停工",
        "全廠停機 請立刻處理",
        auth=[f"{OUR_MTA}; spf=pass smtp.mailfrom=attacker@evil.example"],
    )
    ticket = ingest(engine, settings, raw, envelope_from="attacker@evil.example")
    assert ticket["suggested_priority"] == "P1" and ticket["suggestion_trusted"] is False
    assert pages(engine) == [] and page_texts(engine) == []
