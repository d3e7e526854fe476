"""The outbox dispatcher against a fake relay (the ``MailRelay`` port): what each answer of the
relay does to the outbox row, fast and without sockets. The same paths over real SMTP are in
tests/outbound/test_acks.py and tests/outbound/test_outbound_addresses.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.config import Settings
from intaked.outbound.compose import mail_payload
from intaked.outbound.dispatcher import dispatch_once
from intaked.outbound.outbox import enqueue
from intaked.ports.mail import PermanentFailure, RelayUnavailable, TemporaryFailure
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import outbox_table
from intaked.store.types import utcnow
from tests.support.daemon import make_settings
from tests.support.fake_relay import FakeRelay

FROM = "IT 服務台 <helpdesk@example.com.tw>"


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return make_settings(sqlite_url, outbound_mail={"from_address": FROM})


def queue(engine: Engine, *recipients: str) -> None:
    rows = [
        {
            "kind": "mail",
            "purpose": "ack",
            "idempotency_key": f"test:{n}:{to}",
            "recipient": to,
            "payload": mail_payload(
                from_address=FROM,
                to_address=to,
                to_name=None,
                rendered={
                    "subject": f"[IT-202612-0000{n}] 已收到",
                    "text": "我們已收到您的報告。",
                    "html": "",
                },
                message_id=f"ack-{n}@example.com.tw",
                in_reply_to=None,
                references=[],
            ),
        }
        for n, to in enumerate(recipients, 1)
    ]
    with engine.begin() as conn:
        enqueue(conn, rows, utcnow())


def outbox(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {row.recipient: row for row in conn.execute(select(outbox_table).order_by(outbox_table.c.id))}


def test_a_mail_the_relay_takes_is_sent_with_its_reply_and_bare_envelope_sender(
    engine: Engine, settings: Settings
) -> None:
    relay = FakeRelay()
    queue(engine, "lin@example.com")
    assert dispatch_once(engine, settings, relay) == 1
    (handed,) = relay.handed
    assert (handed.mail_from, handed.rcpt_tos) == ("helpdesk@example.com.tw", ["lin@example.com"])
    assert handed.message["Message-ID"] == "<ack-1@example.com.tw>"
    assert str(handed.message["From"]) == FROM
    row = outbox(engine)["lin@example.com"]
    assert (row.state, row.attempts, row.provider_id) == ("sent", 1, "250 2.0.0 Ok: queued as FAKE1")
    assert dispatch_once(engine, settings, relay) == 0, "nothing is sent twice"


def test_a_permanent_refusal_fails_the_row_and_the_next_mail_still_goes(
    engine: Engine, settings: Settings
) -> None:
    relay = FakeRelay({"gone@example.com": [PermanentFailure("550 5.1.1 no such user")]})
    queue(engine, "gone@example.com", "lin@example.com")
    assert dispatch_once(engine, settings, relay) == 2
    rows = outbox(engine)
    assert (rows["gone@example.com"].state, rows["gone@example.com"].last_error) == (
        "failed",
        "550 5.1.1 no such user",
    )
    assert rows["lin@example.com"].state == "sent"
    assert [h.rcpt_tos for h in relay.handed] == [["lin@example.com"]]


def test_a_temporary_refusal_defers_only_that_row(engine: Engine, settings: Settings) -> None:
    relay = FakeRelay({"full@example.com": [TemporaryFailure("452 4.2.2 mailbox full")]})
    queue(engine, "full@example.com", "lin@example.com")
    before = utcnow()
    assert dispatch_once(engine, settings, relay) == 2
    rows = outbox(engine)
    full = rows["full@example.com"]
    assert (full.state, full.attempts, full.last_error) == ("pending", 1, "452 4.2.2 mailbox full")
    assert full.next_attempt_at.replace(tzinfo=dt.UTC) > before
    assert rows["lin@example.com"].state == "sent"


def test_a_relay_that_is_out_defers_the_whole_batch_after_one_try(engine: Engine, settings: Settings) -> None:
    relay = FakeRelay({"a@example.com": [RelayUnavailable("connection refused")]})
    queue(engine, "a@example.com", "b@example.com", "c@example.com")
    with pytest.raises(RelayUnavailable):
        dispatch_once(engine, settings, relay)
    assert relay.attempts == 1, "one attempt per outage, not one per queued mail"
    rows = outbox(engine)
    assert {to: row.state for to, row in rows.items()} == dict.fromkeys(rows, "pending")
    assert rows["a@example.com"].attempts == 1
    assert rows["b@example.com"].last_error == "connection refused"
    assert relay.handed == []
