"""The stall alarm of a real daemon (its back office a process of its own, SQLite and the real
PostgreSQL server) with a real SMTP sink as the relay: the back office stopped with SIGSTOP while
mail arrives stalls the ledger; exactly one alarm mail names it, a second front on the same store
does not alarm again for the open incident, and SIGCONT brings exactly one recovery mail."""

from __future__ import annotations

import os
import signal
import smtplib
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from intaked.health import AlarmMonitor
from intaked.outbound.mailer import SmtpMailer
from intaked.store.models import alarm_table, worker_table
from tests.support.daemon import DaemonThread, make_settings
from tests.support.processes import stop_between_writes
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

HELPDESK = "helpdesk@example.com"
OPS = "ops@example.com"


def report(n: int) -> bytes:
    return (
        f"From: Ming Wang <ming.wang@example.com>\r\nTo: {HELPDESK}\r\nSubject: MES down {n}\r\n"
        f"Message-ID: <alarm-{n}@example.com>\r\n\r\nNobody can log in.\r\n"
    ).encode()


@pytest.fixture
def daemon(db_url: str, sink: SmtpSink) -> Iterator[DaemonThread]:
    settings = make_settings(
        db_url,
        smtp_intake={"recipients": [HELPDESK]},
        outbound_mail={"host": "127.0.0.1", "port": sink.port, "from_address": HELPDESK},
        outbox={"poll_seconds": 0.2, "retry_base_seconds": 0.2},
        # a long lease: nobody is taken for dead while the back office is stopped
        daemon={"back_office": "process", "heartbeat_seconds": 0.5, "lease_seconds": 60},
        health={
            "alarm_email": OPS,
            "check_seconds": 0.2,
            "ledger_stall_seconds": 2,
            "worker_silent_seconds": 3600,
        },
    )
    thread = DaemonThread(settings).start()
    yield thread
    thread.stop()


def alarm_mails(sink: SmtpSink) -> list[EmailMessage]:
    return [m.message for m in sink.messages() if OPS in m.rcpt_tos]


def send(daemon: DaemonThread, n: int) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=10) as client:
        client.sendmail("ming.wang@example.com", [HELPDESK], report(n))


def back_office_up(daemon: DaemonThread) -> bool:
    with daemon.engine.connect() as conn:
        roles = conn.execute(select(worker_table.c.role).where(worker_table.c.state == "alive")).scalars()
        return "back_office.intake" in set(roles)


def test_a_stalled_ledger_is_told_once_and_its_recovery_once(daemon: DaemonThread, sink: SmtpSink) -> None:
    wait_until(lambda: back_office_up(daemon), what="the back office up")
    send(daemon, 1)
    wait_until(lambda: daemon.ticket_count() == 1, what="the back office filing the first mail")
    assert alarm_mails(sink) == []
    assert daemon.daemon.back_office is not None
    intake = daemon.daemon.back_office.pid
    assert intake is not None
    stop_between_writes(intake, daemon.settings.database.url)
    try:
        send(daemon, 2)  # the front takes it; nobody files it
        mails = wait_until(lambda: alarm_mails(sink), timeout=60, what="the alarm mail")
        subject = str(mails[0]["Subject"])
        assert subject.startswith("intaked: the intake ledger stalled since"), subject
        body = mails[0].get_content()
        assert "1 captured item(s) not yet filed" in body and "Condition: ledger" in body
        assert mails[0]["Auto-Submitted"] == "auto-generated"
        time.sleep(1.0)  # a dozen more checks: no second alarm
        assert len(alarm_mails(sink)) == 1
        second_front = AlarmMonitor(
            daemon.settings, daemon.engine, lambda: SmtpMailer(daemon.settings.outbound_mail), None
        )
        second_front.check_once()  # another node (or a restart) sees the same open incident
        assert len(alarm_mails(sink)) == 1
        with daemon.engine.connect() as conn:
            row = conn.execute(select(alarm_table).where(alarm_table.c.key == "ledger")).one()
        assert row.notified_at is not None and row.resolved_at is None
    finally:
        os.kill(intake, signal.SIGCONT)
    wait_until(lambda: len(alarm_mails(sink)) == 2, timeout=60, what="the recovery mail")
    assert str(alarm_mails(sink)[1]["Subject"]) == "intaked: the intake ledger recovered"
    time.sleep(1.0)
    assert len(alarm_mails(sink)) == 2
    assert daemon.ticket_count() == 2
    with daemon.engine.connect() as conn:
        row = conn.execute(select(alarm_table).where(alarm_table.c.key == "ledger")).one()
    assert row.resolved_at is not None
