"""Satisfaction surveys by SMS for hotline callers from a mobile number: the survey goes to the
fake phone provider through the Twilio dispatcher with its code; the caller's SMS reply with the
code, signed as Twilio signs it, scores the ticket; a forged one is refused (403) and changes
nothing; a reply without a score gets one clarifying SMS; page acknowledgements still work; with
Twilio down the survey waits in the outbox and goes once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from intaked.config import Settings
from intaked.paging.outcomes import attempt_updated
from intaked.ports.phone import SMS_INCOMING_PATH, TemporaryFailure
from intaked.sla.sweeper import sweep
from intaked.store.models import message_table, outbox_table, survey_table, ticket_event_table, ticket_table
from intaked.twilio.dispatcher import TwilioSender
from intaked.twilio.rate import TokenBucket
from intaked.twilio.routes import PAGING, build_routes
from tests.support.fake_phone import FakePhoneProvider
from tests.support.phone import signed_post
from tests.support.webhookd import RunningWebhooks, running_webhooks
from tests.twilio.conftest import AUTH_TOKEN, engine, make_attempt, make_page, page, twilio_settings

__all__ = ["engine"]

CALLER = "+886912345678"
LANDLINE = "+886227001234"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def settings() -> Settings:
    return twilio_settings()


@pytest.fixture
def hooks(settings: Settings, engine: Engine) -> Iterator[RunningWebhooks]:
    with running_webhooks(settings, engine, build_routes(settings, attempt_updated, [PAGING])) as running:
        yield running


def phone_ticket(engine: Engine, number: str, caller: str) -> int:
    """A hotline ticket, resolved and due to close."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(ticket_table)
                .values(
                    number=number,
                    status="resolved",
                    channel="phone",
                    subject="來電：印表機",
                    requester_phone=caller,
                    created_at=NOW - dt.timedelta(days=5),
                    updated_at=NOW,
                    resolved_at=NOW - dt.timedelta(days=4),
                    auto_close_at=NOW - dt.timedelta(minutes=1),
                    sla_status="resolved",
                )
                .returning(ticket_table.c.id)
            ).scalar_one()
        )


def send_sms(engine: Engine, settings: Settings, provider: FakePhoneProvider) -> None:
    sender = TwilioSender(engine, settings, provider, TokenBucket(1000.0, 1000.0), on_attempt=attempt_updated)
    while sender.dispatch_once("sms"):
        pass


def one(engine: Engine, table: Any, **where: Any) -> Any:
    with engine.connect() as conn:
        query = select(table).where(*(table.c[k] == v for k, v in where.items()))
        return conn.execute(query).mappings().one()


def kinds(engine: Engine, ticket_id: int) -> list[str]:
    with engine.connect() as conn:
        query = select(ticket_event_table.c.kind).where(ticket_event_table.c.ticket_id == ticket_id)
        return list(conn.execute(query.order_by(ticket_event_table.c.id)).scalars())


def post(hooks: RunningWebhooks, sid: str, body: str, sender: str = CALLER, token: str = AUTH_TOKEN) -> int:
    params = [("MessageSid", sid), ("From", sender), ("To", "+886212345678"), ("Body", body)]
    status, _ = signed_post(hooks.base_url, hooks.public_url, SMS_INCOMING_PATH, params, token)
    return status


def test_a_hotline_caller_gets_the_survey_by_sms_and_the_coded_reply_scores(
    engine: Engine, settings: Settings, hooks: RunningWebhooks
) -> None:
    ticket_id = phone_ticket(engine, "IT-202612-00007", CALLER)
    sweep(engine, NOW, settings=settings)
    sweep(engine, NOW + dt.timedelta(minutes=5), settings=settings)
    provider = FakePhoneProvider()
    send_sms(engine, settings, provider)
    (sms,) = provider.sms
    survey = one(engine, survey_table, ticket_id=ticket_id)
    code = survey["code"]
    assert sms.to == CALLER and "IT-202612-00007" in sms.body and f"5 {code}" in sms.body
    assert survey["channel"] == "sms" and code.isalpha()

    assert post(hooks, "SM" + "a" * 32, f"4 {code.lower()} 態度很好", token="forged-token") == 403
    assert one(engine, ticket_table, id=ticket_id)["satisfaction_score"] is None

    assert post(hooks, "SM" + "b" * 32, f"4 {code.lower()} 態度很好") == 200
    t = one(engine, ticket_table, id=ticket_id)
    assert (t["status"], t["satisfaction_score"], t["satisfaction_comment"]) == ("closed", 4, "態度很好")
    stored = one(engine, message_table, ticket_id=ticket_id)
    assert (stored["channel"], stored["sender"], stored["header_message_id"]) == (
        "sms",
        CALLER,
        "sms:SM" + "b" * 32,
    )
    assert "satisfaction_answered" in kinds(engine, ticket_id)
    assert post(hooks, "SM" + "b" * 32, f"4 {code}") == 200, "a replay is acknowledged"
    assert kinds(engine, ticket_id).count("satisfaction_answered") == 1, "and changes nothing"


def test_an_sms_reply_without_a_score_gets_one_clarifying_sms(
    engine: Engine, settings: Settings, hooks: RunningWebhooks
) -> None:
    ticket_id = phone_ticket(engine, "IT-202612-00008", CALLER)
    sweep(engine, NOW, settings=settings)
    provider = FakePhoneProvider()
    send_sms(engine, settings, provider)
    code = one(engine, survey_table, ticket_id=ticket_id)["code"]
    assert post(hooks, "SM" + "c" * 32, f"{code} 很好") == 200
    assert post(hooks, "SM" + "d" * 32, f"{code} 真的很好") == 200
    send_sms(engine, settings, provider)
    clarifying = [s for s in provider.sms if "Please reply a score" in s.body]
    assert len(clarifying) == 1 and clarifying[0].to == CALLER and code in clarifying[0].body
    t = one(engine, ticket_table, id=ticket_id)
    assert (t["satisfaction_score"], t["satisfaction_comment"]) == (None, "真的很好")
    assert post(hooks, "SM" + "e" * 32, f"{code} 5") == 200
    assert one(engine, ticket_table, id=ticket_id)["satisfaction_score"] == 5


def test_a_landline_caller_gets_no_sms_survey(engine: Engine, settings: Settings) -> None:
    ticket_id = phone_ticket(engine, "IT-202612-00009", LANDLINE)
    sweep(engine, NOW, settings=settings)
    provider = FakePhoneProvider()
    send_sms(engine, settings, provider)
    assert provider.sms == []
    assert "survey_not_sent" in kinds(engine, ticket_id)


def test_a_page_acknowledgement_by_sms_still_acknowledges(
    engine: Engine, settings: Settings, hooks: RunningWebhooks
) -> None:
    page_id = make_page(engine)
    make_attempt(engine, page_id, "sms", CALLER)
    phone_ticket(engine, "IT-202612-00010", CALLER)
    sweep(engine, NOW, settings=settings)
    assert post(hooks, "SM" + "f" * 32, f"1 {page(engine, page_id).reply_code}") == 200
    assert page(engine, page_id).state == "acknowledged"


def test_a_survey_sms_while_twilio_is_down_goes_once_when_it_is_back(
    engine: Engine, settings: Settings
) -> None:
    """Twilio answers 503 (a fault injected at the fake provider): the survey waits in the
    outbox, the ticket stays closed with one survey, and it reaches the caller once later."""
    ticket_id = phone_ticket(engine, "IT-202612-00011", CALLER)
    sweep(engine, NOW, settings=settings)
    provider = FakePhoneProvider()
    provider.fail_next("send_sms", TemporaryFailure("create message: HTTP 503", status=503))
    sender = TwilioSender(engine, settings, provider, TokenBucket(1000.0, 1000.0), on_attempt=attempt_updated)
    with pytest.raises(TemporaryFailure):
        sender.dispatch_once("sms")
    assert provider.sms == []
    row = one(engine, outbox_table, purpose="survey")
    assert row["state"] == "pending" and "503" in row["last_error"]
    assert one(engine, ticket_table, id=ticket_id)["status"] == "closed"
    with engine.begin() as conn:  # the retry's time has come
        conn.execute(update(outbox_table).where(outbox_table.c.id == row["id"]).values(next_attempt_at=NOW))
    send_sms(engine, settings, provider)
    send_sms(engine, settings, provider)
    (sms,) = provider.sms
    assert sms.to == CALLER and "IT-202612-00011" in sms.body
    assert one(engine, outbox_table, purpose="survey")["state"] == "sent"
    assert one(engine, survey_table, ticket_id=ticket_id)["channel"] == "sms"
