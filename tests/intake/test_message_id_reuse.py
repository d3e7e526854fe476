"""A Message-ID is the same message only with the same content: a different mail reusing one is
its own ticket (acknowledged, with a ``message_id_reused`` problem); the same mail resent, or
arriving by SMTP and by IMAP with Dovecot's trace fields, is still stored once."""

from __future__ import annotations

import hashlib
import json
import smtplib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.models import inbound_item_table, message_table, outbox_table, ticket_table
from intaked.store.rawbytes import decompress_raw
from tests.outbound.test_acks import HELPDESK, Intake, rows, start
from tests.support.daemon import DaemonThread, make_settings
from tests.support.dovecot import PASSWORD, USER, Dovecot, dovecot_lmtp_unavailable_reason
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

REUSED = "1@localhost"


def device_mail(sender: str, body: str, *, date: str = "Mon, 07 Dec 2026 08:00:00 +0800") -> bytes:
    return (
        f"From: {sender}\r\nTo: {HELPDESK}\r\nSubject: Scan to mail\r\nDate: {date}\r\n"
        f"Message-ID: <{REUSED}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


SCANNER = device_mail("scanner-a@example.com", "Scanned page 1 of 1: broken chair, room 301.")
PRINTER = device_mail("printer-b@other.example", "Toner low on printer B, 2nd floor.")


def send(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(sender, [HELPDESK], raw)


def inbound(engine: Any) -> list[Any]:
    return [m for m in rows(engine, message_table) if m.direction == "in"]


def item_states(engine: Any) -> list[str]:
    return [r.state for r in rows(engine, inbound_item_table)]


def problems(message: Any) -> list[str]:
    return json.loads(message.parse_problems) if message.parse_problems else []


def test_a_different_mail_reusing_a_message_id_is_its_own_ticket(db_url: str, sink: SmtpSink) -> None:
    daemon = start(db_url, sink)
    try:
        send(daemon.smtp_port, SCANNER, "scanner-a@example.com")
        wait_until(lambda: daemon.ticket_count() == 1, what="the scanner's ticket")
        send(daemon.smtp_port, PRINTER, "printer-b@other.example")
        acks = wait_until(lambda: len(sink.messages()) == 2 and sink.messages(), what="two acknowledgements")
        first, second = rows(daemon.engine, ticket_table)
        assert (first.requester_email, second.requester_email) == (
            "scanner-a@example.com",
            "printer-b@other.example",
        )
        assert sorted(r for ack in acks for r in ack.rcpt_tos) == [
            "printer-b@other.example",
            "scanner-a@example.com",
        ]
        assert (
            second.number
            in next(a for a in acks if a.rcpt_tos == ["printer-b@other.example"]).message["Subject"]
        )
        scanner_message, printer_message = inbound(daemon.engine)
        assert scanner_message.ticket_id == first.id and printer_message.ticket_id == second.id
        assert printer_message.header_message_id == scanner_message.header_message_id == REUSED
        assert "Toner low" in printer_message.body_text
        assert problems(scanner_message) == []
        (reuse,) = [p for p in problems(printer_message) if p.startswith("message_id_reused:")]
        assert f"<{REUSED}>" in reuse and first.number in reuse
        assert item_states(daemon.engine) == ["done", "done"]

        # The printer's mail again (its retry, or a second copy): still stored once.
        send(daemon.smtp_port, PRINTER, "printer-b@other.example")
        wait_until(
            lambda: len(item_states(daemon.engine)) == 3 and daemon.pending_items() == 0, what="the copy"
        )
        assert item_states(daemon.engine) == ["done", "done", "duplicate"]
        assert daemon.ticket_count() == 2 and len(inbound(daemon.engine)) == 2
        assert len(rows(daemon.engine, outbox_table)) == 2, "no acknowledgement for the copy"
    finally:
        daemon.stop()


def test_the_same_mail_sent_twice_is_one_ticket_and_one_acknowledgement(db_url: str, sink: SmtpSink) -> None:
    daemon = start(db_url, sink)
    try:
        send(daemon.smtp_port, SCANNER, "scanner-a@example.com")
        relayed = (
            b"Received: from relay.example.com by mx.example.org; Mon, 7 Dec 2026 08:01:00 +0800\r\n"
            + SCANNER.replace(b"\r\n", b"\n")
        )
        send(daemon.smtp_port, relayed, "scanner-a@example.com")
        wait_until(lambda: len(item_states(daemon.engine)) == 2 and daemon.pending_items() == 0, what="both")
        wait_until(sink.messages, what="the acknowledgement")
        assert sorted(item_states(daemon.engine)) == ["done", "duplicate"]
        assert daemon.ticket_count() == 1 and len(inbound(daemon.engine)) == 1
        assert len(rows(daemon.engine, outbox_table)) == 1
        (ack,) = sink.messages()
        assert ack.rcpt_tos == ["scanner-a@example.com"]
    finally:
        daemon.stop()


@pytest.fixture
def intake(db_url: str) -> Iterator[Intake]:
    it = Intake(db_url)
    yield it
    it.engine.dispose()


def ingest_together(intake: Intake, *mails: tuple[bytes, str]) -> None:
    insert_items(intake.engine, [RawItem("smtp", raw, envelope_from=sender) for raw, sender in mails])
    while process_once(intake.engine, intake.settings):
        pass


def test_reuse_within_one_batch(intake: Intake) -> None:
    ingest_together(
        intake,
        (SCANNER, "scanner-a@example.com"),
        (PRINTER, "printer-b@other.example"),
        (SCANNER, "scanner-a@example.com"),
        (PRINTER, "printer-b@other.example"),
    )
    assert item_states(intake.engine) == ["done", "done", "duplicate", "duplicate"]
    first, second = rows(intake.engine, ticket_table)
    assert (first.requester_email, second.requester_email) == (
        "scanner-a@example.com",
        "printer-b@other.example",
    )
    scanner_message, printer_message = inbound(intake.engine)
    assert problems(scanner_message) == []
    assert any(first.number in p for p in problems(printer_message) if p.startswith("message_id_reused:"))
    assert [r.recipient for r in rows(intake.engine, outbox_table)] == [
        "scanner-a@example.com",
        "printer-b@other.example",
    ]


def test_a_row_stored_without_a_fingerprint_is_compared_by_its_raw_bytes(intake: Intake) -> None:
    intake.ingest(SCANNER, "scanner-a@example.com")
    with intake.engine.begin() as conn:
        conn.execute(update(message_table).values(content_digest=None))  # as stored before 0009
    intake.ingest(SCANNER, "scanner-a@example.com")
    assert item_states(intake.engine) == ["done", "duplicate"]
    intake.ingest(PRINTER, "printer-b@other.example")
    assert item_states(intake.engine) == ["done", "duplicate", "done"]
    assert len(rows(intake.engine, ticket_table)) == 2


def test_a_row_without_fingerprint_or_raw_bytes_is_taken_for_the_same_mail(intake: Intake) -> None:
    intake.ingest(SCANNER, "scanner-a@example.com")
    with intake.engine.begin() as conn:
        conn.execute(update(message_table).values(content_digest=None, inbound_item_id=None))
    intake.ingest(PRINTER, "printer-b@other.example")
    assert item_states(intake.engine) == ["done", "duplicate"]
    assert len(rows(intake.engine, ticket_table)) == 1


def test_a_reply_to_a_reused_message_id_joins_the_earliest_ticket(intake: Intake) -> None:
    intake.ingest(SCANNER, "scanner-a@example.com")
    intake.ingest(PRINTER, "printer-b@other.example")
    reply = (
        f"From: Lin <lin@example.com>\r\nTo: {HELPDESK}\r\nSubject: Re: Scan to mail\r\n"
        f"Message-ID: <reply-1@example.com>\r\nIn-Reply-To: <{REUSED}>\r\n\r\nFixed.\r\n"
    ).encode()
    intake.ingest(reply, "lin@example.com")
    first, _ = rows(intake.engine, ticket_table)
    assert inbound(intake.engine)[-1].ticket_id == first.id


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if reason := dovecot_lmtp_unavailable_reason():
        pytest.skip(reason)
    with Dovecot(lmtp=True) as server:
        yield server


def test_the_same_mail_by_smtp_and_by_dovecot_with_its_trace_fields_is_stored_once(
    db_url: str, dovecot: Dovecot
) -> None:
    mailbox = {
        "name": "helpdesk",
        "host": "127.0.0.1",
        "port": dovecot.port,
        "tls": "none",
        "username": USER,
        "password": PASSWORD,
        "poll_seconds": 0.5,
        "reconnect_max_seconds": 0.5,
        "auth_retry_seconds": 0.5,
        "timeout_seconds": 10,
    }
    daemon = DaemonThread(make_settings(db_url, imap=[mailbox])).start()
    try:
        send(daemon.smtp_port, SCANNER, "scanner-a@example.com")
        dovecot.deliver(SCANNER, "scanner-a@example.com")
        wait_until(
            lambda: dovecot.count("INBOX") == 0 and len(item_states(daemon.engine)) == 2,
            timeout=30,
            what="both channels",
        )
        wait_until(lambda: daemon.pending_items() == 0, what="both items stored")
        by_channel = {r.channel: r for r in rows(daemon.engine, inbound_item_table)}
        assert set(by_channel) == {"smtp", "imap"}
        imap_raw = decompress_raw(by_channel["imap"].raw, by_channel["imap"].raw_encoding)
        for trace in (b"Return-Path: <scanner-a@example.com>", b"Delivered-To: ", b"Received: from "):
            assert trace in imap_raw, "the IMAP copy carries Dovecot's trace fields"
        assert sorted(item_states(daemon.engine)) == ["done", "duplicate"]
        assert daemon.ticket_count() == 1 and len(inbound(daemon.engine)) == 1
    finally:
        daemon.stop()


def test_a_mail_stored_without_a_readable_message_id_is_recognised_by_its_bytes(intake: Intake) -> None:
    intake.ingest(SCANNER, "scanner-a@example.com")
    with intake.engine.begin() as conn:  # as an older parser stored it, the Message-ID unread
        conn.execute(update(message_table).values(dedupe_key=f"sha256:{hashlib.sha256(SCANNER).hexdigest()}"))
    intake.ingest(SCANNER, "scanner-a@example.com")
    assert item_states(intake.engine) == ["done", "duplicate"]
    assert len(rows(intake.engine, ticket_table)) == 1
