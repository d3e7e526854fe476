"""The paging webhooks on the real listener: a forged keypress or SMS changes nothing (403), a
replayed one changes nothing twice, and a good one acknowledges or escalates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.config import Settings, settings_from_mapping
from intaked.paging.outcomes import attempt_updated
from intaked.ports.phone import KEYPRESS_PATH, SMS_INCOMING_PATH, VOICE_PAGE_PATH
from intaked.sla.context import load_context
from intaked.store.models import page_attempt_table, page_table, ticket_event_table
from intaked.tickets.lifecycle import triage
from intaked.twilio.routes import PAGING, build_routes
from tests.paging.test_engine import CHEN, CONFIG, engine, new_ticket
from tests.support.phone import signed_post
from tests.support.webhookd import RunningWebhooks, running_webhooks

__all__ = ["engine"]

TOKEN = "current-token-0123456789abcdef"
PUBLIC = "https://intaked.example.com"


@pytest.fixture
def settings() -> Settings:
    return settings_from_mapping(
        CONFIG
        | {
            "twilio": {
                "account_sid": "AC" + "0123456789abcdef" * 2,
                "auth_token": TOKEN,
                "from_number": "+886212345678",
            },
            "webhooks": {"listen": "127.0.0.1:0", "public_url": PUBLIC},
        },
        environ={},
    )


@pytest.fixture
def hooks(settings: Settings, engine: Engine) -> Iterator[RunningWebhooks]:
    routes = build_routes(settings, attempt_updated, [PAGING])
    new_ticket(engine)
    triage(engine, load_context(engine, settings), "IT-202611-00042", priority="P1", by="fs")
    with running_webhooks(settings, engine, routes) as running:
        yield running


def call_attempt(engine: Engine) -> Any:
    with engine.connect() as conn:
        return (
            conn.execute(select(page_attempt_table).where(page_attempt_table.c.channel == "call"))
            .mappings()
            .one()
        )


def page(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(page_table)).mappings().one()


def post(hooks: RunningWebhooks, path: str, params: list[tuple[str, str]], **kw: Any) -> tuple[int, str]:
    return signed_post(hooks.base_url, hooks.public_url, path, params, TOKEN, **kw)


def test_a_forged_keypress_gets_403_and_acknowledges_nothing(hooks: RunningWebhooks, engine: Engine) -> None:
    path = f"{KEYPRESS_PATH}?attempt={call_attempt(engine)['id']}"
    params = [("CallSid", "CA" + "1" * 32), ("Digits", "1"), ("From", "+886212345678"), ("To", CHEN)]
    status, _ = signed_post(hooks.base_url, hooks.public_url, path, params, "not-the-token")
    assert status == 403
    status, _ = post(hooks, path, params, signature="")
    assert status == 403
    assert page(engine)["state"] == "active"


def test_answered_call_reads_the_page_and_1_acknowledges(hooks: RunningWebhooks, engine: Engine) -> None:
    attempt = call_attempt(engine)
    call = [("CallSid", "CA" + "2" * 32), ("CallStatus", "in-progress"), ("AnsweredBy", "human")]
    status, twiml = post(hooks, f"{VOICE_PAGE_PATH}?attempt={attempt['id']}", call)
    assert status == 200 and "<Gather" in twiml and "I T, 2 0 2 6 1 1, 0 0 0 4 2" in twiml
    status, twiml = post(hooks, f"{KEYPRESS_PATH}?attempt={attempt['id']}", [*call, ("Digits", "1")])
    assert status == 200 and "incident commander" in twiml
    p = page(engine)
    assert (p["state"], p["acknowledged_by"], p["ack_channel"]) == ("acknowledged", "chen", "call")


def test_a_replayed_9_escalates_once(hooks: RunningWebhooks, engine: Engine) -> None:
    attempt = call_attempt(engine)
    params = [("CallSid", "CA" + "3" * 32), ("Digits", "9")]
    path = f"{KEYPRESS_PATH}?attempt={attempt['id']}"
    assert post(hooks, path, params)[0] == 200
    fence = page(engine)["fence"]
    assert post(hooks, path, params)[0] == 200
    assert page(engine)["fence"] == fence, "the replay moved nothing"
    with engine.connect() as conn:
        kinds = conn.execute(
            select(ticket_event_table.c.kind).where(ticket_event_table.c.kind == "page_escalated")
        ).all()
    assert len(kinds) == 1


def test_an_sms_reply_acknowledges_and_a_stranger_is_told_no(hooks: RunningWebhooks, engine: Engine) -> None:
    code = page(engine)["reply_code"]
    stranger = [("MessageSid", "SM" + "4" * 32), ("From", "+886999999999"), ("Body", f"1 {code}")]
    status, twiml = post(hooks, SMS_INCOMING_PATH, stranger)
    assert status == 200 and "<Message>" in twiml and page(engine)["state"] == "active"
    reply = [("MessageSid", "SM" + "5" * 32), ("From", CHEN), ("Body", f"確認 {code}")]
    status, twiml = post(hooks, SMS_INCOMING_PATH, reply)
    assert status == 200 and "<Message>" not in twiml
    assert page(engine)["ack_channel"] == "sms"
