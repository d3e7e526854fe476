"""The Twilio dispatcher on the phone provider port, with the in-memory fake provider
(tests/support/fake_phone.py) and a SQLite store: what the outbox row, the page attempt and the
attempt listener end up with for each answer the provider can give. The same paths over real
HTTP (Prism, the fake phone network) are in test_dispatcher.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select, update

from intaked.config import Settings
from intaked.outbound.outbox import enqueue
from intaked.ports.phone import PermanentFailure, PhoneProvider, TemporaryFailure
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import outbox_table, page_attempt_table, page_table
from intaked.twilio.dispatcher import TwilioSender
from intaked.twilio.rate import TokenBucket
from tests.support.fake_phone import FakePhoneProvider
from tests.twilio.conftest import PUBLIC_URL, attempt, make_attempt, make_page, page, twilio_settings

NUMBER = "+886912000001"
OTHER = "+886912000002"


class Listener:
    """The attempt listener: each (attempt, status) it was told of, read in the change's transaction."""

    def __init__(self) -> None:
        self.told: list[tuple[int, str]] = []

    def __call__(self, conn: Connection, attempt_id: int, now: dt.datetime) -> None:
        status = conn.execute(
            select(page_attempt_table.c.status).where(page_attempt_table.c.id == attempt_id)
        ).scalar_one()
        self.told.append((attempt_id, str(status)))


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'intaked.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings() -> Settings:
    return twilio_settings()


@pytest.fixture
def provider() -> FakePhoneProvider:
    return FakePhoneProvider()


@pytest.fixture
def listener() -> Listener:
    return Listener()


def sender(engine: Engine, settings: Settings, provider: PhoneProvider, listener: Listener) -> TwilioSender:
    return TwilioSender(engine, settings, provider, TokenBucket(1000.0, 1000.0), on_attempt=listener)


def queue(engine: Engine, kind: str, payload: dict[str, Any], key: str) -> int:
    with engine.begin() as conn:
        enqueue(
            conn,
            [
                {
                    "kind": kind,
                    "purpose": "page",
                    "idempotency_key": key,
                    "recipient": payload.get("to", "-"),
                    "payload": payload,
                }
            ],
            dt.datetime.now(dt.UTC),
        )
        return int(
            conn.execute(select(outbox_table.c.id).where(outbox_table.c.idempotency_key == key)).scalar_one()
        )


def outbox_row(engine: Engine, row_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(outbox_table).where(outbox_table.c.id == row_id)).one()


def make_due(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(outbox_table).values(next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )


def test_an_accepted_sms_is_sent_with_its_callback_and_tells_the_listener(
    engine: Engine, settings: Settings, provider: FakePhoneProvider, listener: Listener
) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "sms", NUMBER)
    row_id = queue(engine, "sms", {"to": NUMBER, "body": "P1 回覆 1 0001", "attempt_id": attempt_id}, "s1")
    assert sender(engine, settings, provider, listener).dispatch_once("sms") == 1
    (sms,) = provider.sms
    assert (sms.to, sms.body) == (NUMBER, "P1 回覆 1 0001")
    assert sms.status_callback == f"{PUBLIC_URL}/twilio/status/sms?attempt={attempt_id}"
    row = outbox_row(engine, row_id)
    assert (row.state, row.provider_id) == ("sent", sms.sid)
    sent = attempt(engine, attempt_id)
    assert (sent.status, sent.provider_sid) == ("sent", sms.sid) and sent.sent_at is not None
    assert listener.told == [(attempt_id, "sent")]


def test_a_refused_call_fails_the_row_and_the_attempt_with_the_providers_code(
    engine: Engine, settings: Settings, provider: FakePhoneProvider, listener: Listener
) -> None:
    provider.fail_next(
        "create_call", PermanentFailure("create call: HTTP 400 error 21211", code=21211, status=400)
    )
    attempt_id = make_attempt(engine, make_page(engine), "call", NUMBER)
    row_id = queue(
        engine, "call", {"to": NUMBER, "url": "https://x.example/t", "attempt_id": attempt_id}, "c1"
    )
    assert sender(engine, settings, provider, listener).dispatch_once("call") == 1
    assert provider.calls == []
    assert outbox_row(engine, row_id).state == "failed"
    failed = attempt(engine, attempt_id)
    assert (failed.status, failed.error_code) == ("failed", "21211")
    assert listener.told == [(attempt_id, "failed")]


def test_a_temporary_failure_defers_the_batch_and_marks_the_page_provider_down(
    engine: Engine, settings: Settings, provider: FakePhoneProvider, listener: Listener
) -> None:
    provider.fail_next("send_sms", TemporaryFailure("create message: HTTP 503", status=503))
    page_id = make_page(engine)
    first = make_attempt(engine, page_id, "sms", NUMBER)
    second = make_attempt(engine, page_id, "sms", OTHER)
    rows = [
        queue(engine, "sms", {"to": NUMBER, "body": "one", "attempt_id": first}, "s1"),
        queue(engine, "sms", {"to": OTHER, "body": "two", "attempt_id": second}, "s2"),
    ]
    with pytest.raises(TemporaryFailure):
        sender(engine, settings, provider, listener).dispatch_once("sms")
    assert provider.sms == [], "nothing more is tried while the provider is down"
    assert [outbox_row(engine, row_id).state for row_id in rows] == ["pending", "pending"]
    assert "not tried" in outbox_row(engine, rows[1]).last_error
    assert page(engine, page_id).provider_down_since is not None
    assert [attempt(engine, a).status for a in (first, second)] == ["queued", "queued"]
    assert listener.told == []


def test_an_unknown_outcome_adopts_the_message_the_provider_already_has(
    engine: Engine, settings: Settings, provider: FakePhoneProvider, listener: Listener
) -> None:
    attempt_id = make_attempt(engine, make_page(engine), "sms", NUMBER)
    row_id = queue(engine, "sms", {"to": NUMBER, "body": "P1 page", "attempt_id": attempt_id}, "s1")
    provider.fail_next("send_sms", TemporaryFailure("no answer in time", unknown_outcome=True))
    with pytest.raises(TemporaryFailure, match="outcome unknown"):
        sender(engine, settings, provider, listener).dispatch_once("sms")
    # The request did reach the provider: it holds the message, though we never heard its Sid.
    delivered = provider.send_sms(NUMBER, "P1 page", None)
    provider.sms.clear()
    make_due(engine)
    assert sender(engine, settings, provider, listener).dispatch_once("sms") == 1
    assert provider.sms == [], "not sent a second time"
    assert outbox_row(engine, row_id).provider_id == delivered
    assert attempt(engine, attempt_id).provider_sid == delivered


def test_a_cancel_stops_the_attempts_call_at_the_provider(
    engine: Engine, settings: Settings, provider: FakePhoneProvider, listener: Listener
) -> None:
    call_sid = "CA" + "7" * 32
    attempt_id = make_attempt(
        engine, make_page(engine), "call", NUMBER, status="ringing", provider_sid=call_sid
    )
    row_id = queue(engine, "call_cancel", {"attempt_id": attempt_id}, "x1")
    assert sender(engine, settings, provider, listener).dispatch_once("call_cancel") == 1
    assert provider.cancels == [call_sid]
    assert outbox_row(engine, row_id).state == "sent"
    assert attempt(engine, attempt_id).status == "cancelled"
    assert listener.told == [(attempt_id, "cancelled")]


def test_a_page_that_ended_while_its_sms_waited_sends_nothing(
    engine: Engine, settings: Settings, provider: FakePhoneProvider, listener: Listener
) -> None:
    page_id = make_page(engine)
    attempt_id = make_attempt(engine, page_id, "sms", NUMBER)
    row_id = queue(engine, "sms", {"to": NUMBER, "body": "P1 page", "attempt_id": attempt_id}, "s1")
    with engine.begin() as conn:
        conn.execute(update(page_table).where(page_table.c.id == page_id).values(state="acknowledged"))
    assert sender(engine, settings, provider, listener).dispatch_once("sms") == 1
    assert provider.sms == []
    assert outbox_row(engine, row_id).state == "cancelled"
    assert attempt(engine, attempt_id).status == "cancelled"
    assert listener.told == [(attempt_id, "cancelled")]
