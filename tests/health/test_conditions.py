"""Each condition the stall alarm watches, raised from what a real store holds (SQLite and the
real PostgreSQL server) through a real SMTP sink, with the alarm's SMS at a fake phone provider
behind the phone port: an outbox row unsent too long, Twilio rows put back with errors, an IMAP
mailbox failing, a silent worker; an SMS the phone refuses is tried again at the next check; a
contact the mail relay cannot reach still gets the SMS."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from sqlalchemy import Engine, insert, update

from intaked.config import Settings, settings_from_mapping
from intaked.health import AlarmMonitor
from intaked.outbound.mailer import SmtpMailer
from intaked.ports.phone import TemporaryFailure
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import imap_mailbox_table, outbox_table, worker_table
from intaked.store.types import utcnow
from tests.support.fake_phone import FakePhoneProvider
from tests.support.smtpsink import SmtpSink

OPS = "ops@example.com"
HELPDESK = "helpdesk@example.com"
HOTLINE = "+886200000000"
ON_DUTY = "+886911000111"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def settings(db_url: str, relay_port: int, **health: object) -> Settings:
    return settings_from_mapping(
        {
            "database": {"url": db_url},
            "outbound_mail": {
                "host": "127.0.0.1",
                "port": relay_port,
                "from_address": "helpdesk@example.com",
            },
            "twilio": {
                "account_sid": "AC" + "0" * 32,
                "auth_token": "t" * 32,
                "from_number": "+886200000000",
            },
            "webhooks": {"public_url": "https://intaked.example.com"},
            "people": {"chen": {"phone": ON_DUTY}},
            "imap": [{"name": "helpdesk", "host": "imap.example.com", "username": "helpdesk@example.com"}],
            "daemon": {"node_name": "node-a", "back_office": "inline"},
            "health": {
                "alarm_email": OPS,
                "alarm_person": "chen",
                "outbox_stall_seconds": 60,
                "mailbox_failing_seconds": 60,
                "worker_silent_seconds": 3600,
                **health,
            },
        },
        environ={},
    )


def monitor(cfg: Settings, engine: Engine, phone: FakePhoneProvider) -> AlarmMonitor:
    return AlarmMonitor(cfg, engine, lambda: SmtpMailer(cfg.outbound_mail), phone)


def alarms(sink: SmtpSink) -> list[EmailMessage]:
    return [m.message for m in sink.messages() if OPS in m.rcpt_tos]


def queue(engine: Engine, kind: str, *, minutes_ago: float, error: str | None = None) -> None:
    at = utcnow() - dt.timedelta(minutes=minutes_ago)
    with engine.begin() as conn:
        conn.execute(
            insert(outbox_table).values(
                kind=kind,
                purpose="page" if kind != "mail" else "ack",
                idempotency_key=f"{kind}:{minutes_ago}:{error}",
                recipient="+886911222333" if kind != "mail" else "lin@example.com",
                state="pending",
                attempts=1 if error else 0,
                payload="{}",
                last_error=error,
                created_at=at,
                next_attempt_at=at,
            )
        )


def test_an_outbox_row_unsent_too_long_is_told_by_mail_and_sms_once(
    engine: Engine, db_url: str, sink: SmtpSink
) -> None:
    phone = FakePhoneProvider()
    watcher = monitor(settings(db_url, sink.port), engine, phone)
    queue(engine, "mail", minutes_ago=0.2)
    watcher.check_once()
    assert alarms(sink) == [] and phone.sms == [], "younger than the threshold"
    queue(engine, "mail", minutes_ago=5)
    watcher.check_once()
    watcher.check_once()
    (mail,) = alarms(sink)
    assert str(mail["Subject"]).startswith("intaked: the outbox stalled since")
    assert "2 outbox row(s) not yet sent" in mail.get_content()
    (sms,) = phone.sms
    assert sms.to == ON_DUTY and sms.body.startswith("intaked alarm: the outbox stalled since")
    with engine.begin() as conn:
        conn.execute(update(outbox_table).values(state="sent", sent_at=utcnow()))
    watcher.check_once()
    assert str(alarms(sink)[-1]["Subject"]) == "intaked: the outbox recovered"
    assert phone.sms[-1].body.startswith("intaked: the outbox recovered at")
    assert len(alarms(sink)) == 2 and len(phone.sms) == 2


def test_twilio_rows_put_back_with_errors_name_twilio_and_its_error(
    engine: Engine, db_url: str, sink: SmtpSink
) -> None:
    phone = FakePhoneProvider()
    queue(engine, "sms", minutes_ago=5, error="connection refused: api.twilio.com:443")
    monitor(settings(db_url, sink.port), engine, phone).check_once()
    (mail,) = alarms(sink)
    assert str(mail["Subject"]).startswith("intaked: Twilio stalled since")
    body = mail.get_content()
    assert "last error: connection refused: api.twilio.com:443" in body and "Condition: twilio" in body
    assert "the outbox stalled" not in str([str(m["Subject"]) for m in alarms(sink)])


def test_a_failing_mailbox_is_told_after_its_threshold(engine: Engine, db_url: str, sink: SmtpSink) -> None:
    phone = FakePhoneProvider()
    watcher = monitor(settings(db_url, sink.port), engine, phone)
    with engine.begin() as conn:
        conn.execute(
            insert(imap_mailbox_table).values(
                name="helpdesk",
                uidvalidity=1,
                last_uid=0,
                last_poll_at=utcnow() - dt.timedelta(seconds=30),
                last_error="LoginFailed: AUTHENTICATE failed",
            )
        )
    watcher.check_once()
    assert alarms(sink) == [], "failing for 30 s of the 60 allowed"
    with engine.begin() as conn:
        conn.execute(update(imap_mailbox_table).values(last_poll_at=utcnow() - dt.timedelta(minutes=5)))
    watcher.check_once()
    (mail,) = alarms(sink)
    assert str(mail["Subject"]).startswith("intaked: IMAP mailbox helpdesk stalled since")
    assert "LoginFailed: AUTHENTICATE failed" in mail.get_content()


def test_a_silent_worker_is_told(engine: Engine, db_url: str, sink: SmtpSink) -> None:
    stale = utcnow() - dt.timedelta(minutes=2)
    with engine.begin() as conn:
        conn.execute(
            insert(worker_table).values(
                id="node-a/front",
                node="node-a",
                role="front",
                pid=os.getpid(),
                state="alive",
                started_at=stale,
                heartbeat_at=stale,
                lease_seconds=5.0,
            )
        )
    watcher = monitor(settings(db_url, sink.port, worker_silent_seconds=0.05), engine, FakePhoneProvider())
    watcher.check_once()
    assert alarms(sink) == [], "the store does not say since when: this front counts from now"
    time.sleep(0.1)
    watcher.check_once()
    (mail,) = alarms(sink)
    assert str(mail["Subject"]).startswith("intaked: the workers of node node-a stalled since")
    assert "node-a/front" in mail.get_content()


def test_an_sms_the_phone_refuses_is_tried_again_and_a_dead_relay_still_leaves_the_sms(
    engine: Engine, db_url: str
) -> None:
    """The relay is down (nothing listens): the alarm mail cannot go, the SMS must. Twilio refuses
    the first SMS: the next check sends it; the alarm is told once."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    phone = FakePhoneProvider()
    phone.fail_next("send_sms", TemporaryFailure("503 from Twilio"))
    watcher = monitor(settings(db_url, dead_port), engine, phone)
    queue(engine, "mail", minutes_ago=5)
    watcher.check_once()
    assert phone.sms == []
    watcher.check_once()
    (sms,) = phone.sms
    assert sms.body.startswith("intaked alarm: the outbox stalled since")
    watcher.check_once()
    assert len(phone.sms) == 1
