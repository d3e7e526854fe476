"""The log says what happened to each mail (docs/operations.md, "Log events and fields"): the real
daemon (`intaked run`, JSON lines on stderr) logs ``ticket_created`` once per new ticket, and a
reply, a copy, a reply reopening a resolved ticket, a reply to a closed one and spam each their
own event, every one naming the ticket, the Message-ID and the inbound item."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, update

from intaked.store.models import ticket_table
from tests.support.waiting import wait_until
from tests.support.workers import free_port

#: The events of a stored (or recognised) inbound item: exactly one per item.
INTAKE_EVENTS = (
    "ticket_created",
    "message_added",
    "ticket_reopened",
    "duplicate_ignored",
    "spam_quarantined",
)


class LoggedDaemon:
    """`intaked run` with its JSON log in a file, taking mail on its own SMTP port."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.port = free_port()
        self.log = tmp_path / "intaked.log"
        config = tmp_path / "intaked.toml"
        config.write_text(
            f'[database]\nurl = "{db_url}"\n'
            f'[smtp_intake]\nlisten = "127.0.0.1:{self.port}"\n'
            "[acknowledgements]\nenabled = false\n"
            '[logging]\nlevel = "info"\nformat = "json"\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKED_") and k != "NOTIFY_SOCKET"}
        env["HOME"] = str(tmp_path)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intaked", "run", "--config", str(config)],
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
            )
        wait_until(
            lambda: self.proc.poll() is not None or "smtp_intake_listening" in self.log.read_text(), 60
        )
        assert self.proc.poll() is None, self.log.read_text()

    def lines(self) -> list[dict[str, Any]]:
        text = self.log.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.startswith("{") and line.endswith("}")]

    def intake(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["event"] in INTAKE_EVENTS]

    def send(self, raw: str) -> dict[str, Any]:
        """Send one mail; the intake event it was logged with."""
        before = len(self.intake())
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.sendmail("lin@example.com", ["helpdesk@example.com"], raw.encode())
        return wait_until(lambda: self.intake()[before:], what="the mail's intake event")[-1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture
def daemon(db_url: str, tmp_path: Path) -> Iterator[LoggedDaemon]:
    running = LoggedDaemon(db_url, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def mail(mid: str, subject: str, *headers: str) -> str:
    extra = "".join(f"{header}\r\n" for header in headers)
    return (
        f"From: Lin <lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}>\r\nDate: Mon, 16 Nov 2026 09:00:00 +0800\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n印表機卡紙 ({mid})\r\n"
    )


def set_status(db_url: str, status: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(ticket_table).values(status=status))
    finally:
        engine.dispose()


def test_each_mail_is_logged_as_what_it_did(daemon: LoggedDaemon, db_url: str) -> None:
    first = mail("report@example.com", "Printer jammed")
    created = daemon.send(first)
    assert created["event"] == "ticket_created" and created["level"] == "info"
    number = created["ticket"]
    assert created["message_id"] == "report@example.com" and isinstance(created["inbound_item"], int)

    copy = daemon.send(first)
    assert (copy["event"], copy["ticket"], copy["message_id"]) == (
        "duplicate_ignored",
        number,
        created["message_id"],
    )

    reply = daemon.send(
        mail("reply-1@example.com", "Re: Printer jammed", "In-Reply-To: <report@example.com>")
    )
    assert (reply["event"], reply["ticket"], reply["message_id"]) == (
        "message_added",
        number,
        "reply-1@example.com",
    )
    assert reply["inbound_item"] not in (created["inbound_item"], copy["inbound_item"])

    set_status(db_url, "resolved")
    reopen = daemon.send(
        mail("reply-2@example.com", "Re: Printer jammed", "In-Reply-To: <report@example.com>")
    )
    assert (reopen["event"], reopen["ticket"]) == ("ticket_reopened", number)

    set_status(db_url, "closed")
    later = daemon.send(
        mail("reply-3@example.com", "Re: Printer jammed", "In-Reply-To: <report@example.com>")
    )
    assert later["event"] == "ticket_created" and later["follows_up"] == number
    assert later["ticket"] != number

    spam = daemon.send(mail("offer@example.net", "Cheap toner", "X-Spam-Flag: YES"))
    assert spam["event"] == "spam_quarantined" and spam["reason"].startswith("X-Spam-Flag")

    events = [(line["event"], line["ticket"]) for line in daemon.intake()]
    assert events == [
        ("ticket_created", number),
        ("duplicate_ignored", number),
        ("message_added", number),
        ("ticket_reopened", number),
        ("ticket_created", later["ticket"]),
        ("spam_quarantined", spam["ticket"]),
    ], "one event per mail: two new tickets, not six"
