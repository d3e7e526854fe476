"""Mail handed to intaked over SMTP/LMTP becomes a ticket; every refusal has its exact reply.

The daemon runs in-process on an ephemeral loopback port; the client is ``smtplib`` over a real
socket; the store is SQLite and the real PostgreSQL server.
"""

from __future__ import annotations

import base64
import hashlib
import smtplib
import sqlite3
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from intaked.store.models import Attachment, Blob, InboundItem, Message, Ticket, TicketEvent
from intaked.store.queries import ticket_detail
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

HELPDESK = "helpdesk@example.com"


@pytest.fixture
def daemon(db_url: str) -> Iterator[DaemonThread]:
    thread = DaemonThread(make_settings(db_url, smtp_intake={"recipients": [HELPDESK, "@it.example.com"]}))
    thread.start()
    yield thread
    thread.stop()


def big5_report() -> bytes:
    """An Outlook-style report in Big5 (CP950 characters included), subject as an encoded word."""
    subject = "產線 MES 當機，碁恒裏無法登入"
    body = "您好：\r\n產線 MES 系統從早上開始無法登入，碁恒裏工作站都一樣。\r\n"
    encoded_subject = "=?big5?B?" + base64.b64encode(subject.encode("cp950")).decode() + "?="
    head = (
        "From: =?big5?B?"
        + base64.b64encode("王小明".encode("cp950")).decode()
        + "?= <ming.wang@example.com>\r\n"
        f"To: {HELPDESK}\r\n"
        f"Subject: {encoded_subject}\r\n"
        "Message-ID: <big5-report-1@mail.example.com>\r\n"
        "Date: Fri, 20 Nov 2026 09:15:00 +0800\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="big5"\r\n'
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + body.encode("cp950")


def send(
    port: int, raw: bytes, *, sender: str = "ming.wang@example.com", recipients: list[str] | None = None
) -> Any:
    with smtplib.SMTP("127.0.0.1", port) as client:
        return client.sendmail(sender, recipients or [HELPDESK], raw)


def tickets(daemon: DaemonThread) -> list[Any]:
    with daemon.engine.connect() as conn:
        return conn.execute(select(Ticket.__table__).order_by(Ticket.__table__.c.id)).all()


def test_mail_becomes_ticket_with_subject_sender_and_body(daemon: DaemonThread) -> None:
    raw = big5_report()
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.ehlo()
        client.mail("ming.wang@example.com")
        assert client.rcpt(HELPDESK) == (250, b"2.1.5 Recipient ok")
        code, reply = client.data(raw)
    assert code == 250
    assert reply.startswith(b"2.0.0 Ok: stored as item ")

    rows = wait_until(lambda: tickets(daemon), what="the ticket")
    assert len(rows) == 1
    ticket = rows[0]
    assert ticket.subject == "產線 MES 當機，碁恒裏無法登入"
    assert ticket.requester_email == "ming.wang@example.com"
    assert ticket.requester_name == "王小明"
    assert ticket.status == "new" and ticket.priority is None and ticket.channel == "email"
    assert ticket.number.startswith("IT-20") and ticket.number.endswith("-00001")
    assert ticket.created_at.tzinfo is not None

    detail = ticket_detail(daemon.engine, ticket.number)
    assert detail is not None
    (message,) = detail["messages"]
    assert message["body_text"] == "您好：\n產線 MES 系統從早上開始無法登入，碁恒裏工作站都一樣。"
    assert message["header_message_id"] == "big5-report-1@mail.example.com"
    assert message["direction"] == "in" and message["channel"] == "smtp"
    assert [e["kind"] for e in detail["events"]] == ["created", "ack_queued"]

    with daemon.engine.connect() as conn:
        item = conn.execute(select(InboundItem.__table__)).one()
    assert item.state == "done" and item.ticket_id == ticket.id
    assert zlib.decompress(item.raw) == raw, "the raw bytes are kept exactly as received"
    assert item.envelope_from == "ming.wang@example.com"


def test_attachments_are_stored_with_their_bytes(daemon: DaemonThread) -> None:
    msg = EmailMessage()
    msg["From"] = "Lin <lin@example.com>"
    msg["To"] = HELPDESK
    msg["Subject"] = "印表機卡紙 screenshot"
    msg["Message-ID"] = "<att-1@example.com>"
    msg.set_content("請看附件。")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    msg.add_attachment(png, maintype="image", subtype="png", filename="卡紙.png")
    send(daemon.smtp_port, msg.as_bytes(), sender="lin@example.com")
    wait_until(lambda: tickets(daemon), what="the ticket")
    with daemon.engine.connect() as conn:
        (attachment,) = conn.execute(select(Attachment.__table__)).all()
        blob = conn.execute(select(Blob.__table__)).one()
    assert attachment.filename == "卡紙.png"
    assert attachment.content_type == "image/png"
    assert attachment.size == len(png)
    assert blob.sha256 == attachment.sha256 == hashlib.sha256(png).hexdigest()
    data = zlib.decompress(blob.data) if blob.encoding == "zlib" else blob.data
    assert data == png


def test_foreign_recipient_is_refused_550_and_nothing_is_stored(daemon: DaemonThread) -> None:
    with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
        client.ehlo()
        client.mail("spammer@example.net")
        code, reply = client.rcpt("someone@elsewhere.example.org")
        assert (code, reply) == (
            550,
            b"5.1.1 <someone@elsewhere.example.org>: recipient address rejected: not a helpdesk address",
        )
        assert client.rcpt("anyone@it.example.com")[0] == 250, "a listed @domain accepts its addresses"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(daemon.smtp_port, big5_report(), recipients=["relay-me@gmail.example"])
    assert refused.value.recipients["relay-me@gmail.example"][0] == 550
    assert daemon.pending_items() == 0 and daemon.ticket_count() == 0


def test_oversize_mail_is_refused_552(db_url: str) -> None:
    thread = DaemonThread(make_settings(db_url, smtp_intake={"max_message_bytes": 4096})).start()
    try:
        big = b"Subject: big\r\nFrom: a@example.com\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100
        # Declared with SIZE: refused at MAIL FROM.
        with smtplib.SMTP("127.0.0.1", thread.smtp_port) as client:
            client.ehlo()
            assert client.has_extn("size") and client.esmtp_features["size"] == "4096"
            code, _ = client.mail("a@example.com", options=[f"SIZE={len(big)}"])
            assert code == 552
        # Not declared: refused at end of DATA.
        with smtplib.SMTP("127.0.0.1", thread.smtp_port) as client:
            client.ehlo()
            client.esmtp_features.pop("size", None)
            client.mail("a@example.com")
            client.rcpt(HELPDESK)
            code, _ = client.data(big)
            assert code == 552
        assert thread.ticket_count() == 0 and thread.pending_items() == 0
    finally:
        thread.stop()


def test_lmtp_answers_once_per_recipient(db_url: str) -> None:
    settings = make_settings(db_url, smtp_intake={"protocol": "lmtp", "recipients": ["@example.com"]})
    thread = DaemonThread(settings).start()
    try:
        with smtplib.LMTP("127.0.0.1", thread.smtp_port) as client:
            assert client.ehlo()[0] == 250  # smtplib's LMTP sends LHLO
            client.mail("ming.wang@example.com")
            assert client.rcpt("helpdesk@example.com")[0] == 250
            assert client.rcpt("security@example.com")[0] == 250
            assert client.rcpt("x@other.example.org")[0] == 550
            client.putcmd("data")
            assert client.getreply()[0] == 354
            client.send(big5_report().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n.\r\n")
            replies = [client.getreply() for _ in range(2)]
        assert [code for code, _ in replies] == [250, 250]
        assert b"<helpdesk@example.com>" in replies[0][1] and b"<security@example.com>" in replies[1][1]
        rows = wait_until(lambda: tickets(thread), what="the ticket")
        assert len(rows) == 1 and rows[0].subject == "產線 MES 當機，碁恒裏無法登入"
    finally:
        thread.stop()


def test_same_message_twice_is_stored_once(daemon: DaemonThread) -> None:
    raw = big5_report()
    send(daemon.smtp_port, raw)
    send(daemon.smtp_port, raw)  # e.g. the sender timed out waiting for our 250 and retried
    wait_until(lambda: daemon.pending_items() == 0 and daemon.ticket_count() >= 1, what="intake")
    assert daemon.ticket_count() == 1
    with daemon.engine.connect() as conn:
        states = sorted(r.state for r in conn.execute(select(InboundItem.__table__.c.state)))
    assert states == ["done", "duplicate"]


def test_malformed_mail_still_becomes_a_ticket_with_raw_bytes_and_problems(daemon: DaemonThread) -> None:
    raw = (
        b"From: broken@example.com\r\nSubject: =?x-unknown?Q?=E5=8D=B0=E8=A1=A8=E6=A9=9F?= broken\r\n"
        b'Content-Type: multipart/mixed; boundary="never-appears"\r\n\r\n'
        b"\xff\xfe\x00garbage \x80\x81 no boundary here\r\n"
    )
    send(daemon.smtp_port, raw, sender="broken@example.com")
    (ticket,) = wait_until(lambda: tickets(daemon), what="the ticket")
    assert ticket.requester_email == "broken@example.com"
    assert "broken" in ticket.subject
    detail = ticket_detail(daemon.engine, ticket.number)
    assert detail is not None
    assert detail["messages"][0]["parse_problems"], "the problem is recorded on the ticket"
    assert "parse_problems" in [e["kind"] for e in detail["events"]]
    with daemon.engine.connect() as conn:
        item = conn.execute(select(InboundItem.__table__)).one()
    assert zlib.decompress(item.raw) == raw


def test_locked_sqlite_store_answers_451_then_the_retry_makes_one_ticket(sqlite_url: str) -> None:
    thread = DaemonThread(make_settings(sqlite_url)).start()
    path = sqlite_url.removeprefix("sqlite:///")
    try:
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(smtplib.SMTPDataError) as deferred:
                send(thread.smtp_port, big5_report())
            assert deferred.value.smtp_code == 451
            assert (
                deferred.value.smtp_error == b"4.3.0 Temporary failure storing the message; try again later"
            )
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        send(thread.smtp_port, big5_report())  # the sending MTA's retry
        wait_until(lambda: thread.ticket_count() == 1 and thread.pending_items() == 0, what="the ticket")
        assert thread.ticket_count() == 1
    finally:
        thread.stop()


def test_postgresql_down_answers_451_then_the_retry_makes_one_ticket(pg_url: str) -> None:
    from tests.support.faultproxy import FaultProxy

    with FaultProxy("127.0.0.1", 5432) as proxy:
        url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        thread = DaemonThread(make_settings(url)).start()
        try:
            proxy.down()
            with pytest.raises(smtplib.SMTPDataError) as deferred:
                send(thread.smtp_port, big5_report())
            assert deferred.value.smtp_code == 451
            proxy.up()
            send(thread.smtp_port, big5_report())
            wait_until(lambda: thread.ticket_count() == 1 and thread.pending_items() == 0, what="the ticket")
            assert thread.ticket_count() == 1
        finally:
            proxy.up()
            thread.stop()


def test_events_are_recorded_for_every_new_ticket(daemon: DaemonThread) -> None:
    for n in range(3):
        msg = EmailMessage()
        msg["From"] = f"user{n}@example.com"
        msg["To"] = HELPDESK
        msg["Subject"] = f"問題 {n}"
        msg.set_content("內容")
        send(daemon.smtp_port, msg.as_bytes(), sender=f"user{n}@example.com")
    wait_until(lambda: daemon.ticket_count() == 3, what="three tickets")
    with daemon.engine.connect() as conn:
        numbers = [r.number for r in conn.execute(select(Ticket.__table__.c.number).order_by("id"))]
        events = conn.execute(select(TicketEvent.__table__)).all()
        messages = conn.execute(select(Message.__table__)).all()
    assert [n[-5:] for n in numbers] == ["00001", "00002", "00003"]
    assert sorted(e.kind for e in events) == ["ack_queued"] * 3 + ["created"] * 3
    assert {m.dedupe_key for m in messages} and len({m.dedupe_key for m in messages}) == 3
