"""Our From address and the addresses we write to, over real SMTP on both sides: a display name in
``outbound_mail.from_address`` (also a Chinese one, RFC 2047-encoded), our Message-IDs in its
domain (so a reply joins), loop detection by the bare address, a requester with a UTF-8 address
(SMTPUTF8 when the relay offers it, a clear failure when not), and AUTH without TLS only when
``outbound_mail.allow_plaintext_auth`` says so."""

from __future__ import annotations

import json
import smtplib
from email import message_from_string, policy
from email.header import decode_header, make_header
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import message_table, outbox_table, ticket_event_table, ticket_table
from tests.support.daemon import DaemonThread, make_settings
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

HELPDESK = "helpdesk@example.com.tw"
CHINESE_FROM = f"IT 服務台 <{HELPDESK}>"
ASCII_FROM = f"IT Helpdesk <{HELPDESK}>"


def start(url: str, sink: SmtpSink, **outbound_mail: Any) -> DaemonThread:
    return DaemonThread(
        make_settings(
            url,
            outbound_mail={"host": "127.0.0.1", "port": sink.port, **outbound_mail},
            outbox={"retry_base_seconds": 0.2, "poll_seconds": 0.2},
        )
    ).start()


def send(port: int, raw: bytes, sender: str, *, utf8: bool = False) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(sender, [HELPDESK], raw, mail_options=["SMTPUTF8"] if utf8 else [])


def report(sender: str, message_id: str = "report-1@example.org") -> bytes:
    return (
        f"From: Lin <{sender}>\r\nTo: {HELPDESK}\r\nSubject: 印表機卡紙\r\nMessage-ID: <{message_id}>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n三樓印表機卡紙\r\n"
    ).encode()


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(table).order_by(next(iter(table.primary_key.columns)))).all()


def raw_header(raw: bytes, name: str) -> str:
    """A header field's value exactly as it arrived (unfolded), before any decoding."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8").replace("\r\n ", " ").replace("\r\n\t", " ")
    (value,) = [
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith(name.lower() + ":")
    ]
    return value


@pytest.mark.parametrize(
    ("from_address", "display_name"), [(CHINESE_FROM, "IT 服務台"), (ASCII_FROM, "IT Helpdesk")]
)
def test_a_display_name_in_from_address_sends_the_ack_and_a_reply_to_it_joins(
    db_url: str, sink: SmtpSink, from_address: str, display_name: str
) -> None:
    daemon = start(db_url, sink, from_address=from_address)
    try:
        send(daemon.smtp_port, report("lin@example.org"), "lin@example.org")
        (ack,) = wait_until(sink.messages, what="the acknowledgement")
        assert ack.mail_from == HELPDESK and ack.rcpt_tos == ["lin@example.org"]
        (sender,) = ack.message["From"].addresses
        assert (sender.display_name, sender.addr_spec) == (display_name, HELPDESK)
        if not display_name.isascii():  # RFC 2047: the raw header is ASCII, and decodes to the name
            assert raw_header(ack.raw, "From").startswith("=?utf-8?")
            assert (
                str(make_header(decode_header(raw_header(ack.raw, "From")))) == f"{display_name} <{HELPDESK}>"
            )
        message_id = ack.message["Message-ID"]
        assert message_id.startswith("<ack.") and message_id.endswith("@example.com.tw>")
        assert message_id.count("<") == 1 and message_id.count(">") == 1
        wait_until(lambda: len(rows(daemon.engine, message_table)) == 2, what="the ack stored")
        (out,) = [m for m in rows(daemon.engine, message_table) if m.direction == "out"]
        assert f"<{out.header_message_id}>" == message_id and out.sender == HELPDESK

        reply = (
            f"From: Lin <lin@example.org>\r\nTo: {from_address}\r\nSubject: Re: 收到了嗎\r\n"
            f"Message-ID: <reply-1@example.org>\r\nIn-Reply-To: {message_id}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n補充：是 A4 紙匣\r\n"
        ).encode()
        send(daemon.smtp_port, reply, "lin@example.org")
        wait_until(lambda: len(rows(daemon.engine, message_table)) == 3, what="the reply stored")
        (ticket,) = rows(daemon.engine, ticket_table)
        assert {m.ticket_id for m in rows(daemon.engine, message_table)} == {ticket.id}
    finally:
        daemon.stop()


class Intake:
    """Ledger-level intake: what gets queued, without sockets."""

    def __init__(self, url: str, from_address: str) -> None:
        self.engine = make_engine(url)
        upgrade(self.engine)
        self.settings = make_settings(url, outbound_mail={"from_address": from_address})

    def ingest(self, raw: bytes, envelope_from: str) -> None:
        insert_items(self.engine, [RawItem("smtp", raw, envelope_from=envelope_from)])
        while process_once(self.engine, self.settings):
            pass


def test_mail_from_our_own_address_with_its_display_name_gets_no_ack(sqlite_url: str) -> None:
    intake = Intake(sqlite_url, CHINESE_FROM)
    intake.ingest(report(HELPDESK.upper()), envelope_from=HELPDESK)
    assert rows(intake.engine, outbox_table) == []
    (event,) = [e for e in rows(intake.engine, ticket_event_table) if e.kind == "ack_suppressed"]
    assert json.loads(event.detail)["reason"] == "sent from our own address HELPDESK@example.com.tw"


def test_our_other_addresses_written_with_a_display_name_get_no_ack(sqlite_url: str) -> None:
    """``acknowledgements.our_addresses`` and ``smtp_intake.recipients`` written the way people
    write addresses (a name, angle brackets, capitals) still name us."""
    intake = Intake(sqlite_url, CHINESE_FROM)
    intake.settings = make_settings(
        sqlite_url,
        outbound_mail={"from_address": CHINESE_FROM},
        acknowledgements={"our_addresses": ["IT 服務台 (舊信箱) <IT-Old@Example.com.tw>"]},
    )
    intake.ingest(report("it-old@example.com.tw"), envelope_from="it-old@example.com.tw")
    assert rows(intake.engine, outbox_table) == []
    (event,) = [e for e in rows(intake.engine, ticket_event_table) if e.kind == "ack_suppressed"]
    assert json.loads(event.detail)["reason"] == "sent from our own address it-old@example.com.tw"


@pytest.mark.parametrize("requester", ["josé@example.com", "用戶@例子.台灣"])
def test_an_ack_to_a_utf8_address_goes_out_with_smtputf8(
    sqlite_url: str, sink: SmtpSink, requester: str
) -> None:
    daemon = start(sqlite_url, sink, from_address=CHINESE_FROM)
    try:
        send(daemon.smtp_port, report(requester), requester, utf8=True)
        (ack,) = wait_until(sink.messages, what="the acknowledgement")
        assert ack.rcpt_tos == [requester] and ack.mail_from == HELPDESK
        message = message_from_string(ack.raw.decode("utf-8"), policy=policy.SMTPUTF8)  # UTF-8 headers
        assert message["To"].addresses[0].addr_spec == requester
        assert message["From"].addresses[0].display_name == "IT 服務台"
        assert "[IT-" in message["Subject"] and "印表機卡紙" in message["Subject"]
        # the relay has it before the sender marks the row (it marks it once the relay said 250)
        wait_until(
            lambda: [r.state for r in rows(daemon.engine, outbox_table)] == ["sent"], what="the row sent"
        )
    finally:
        daemon.stop()


def test_an_ack_to_a_utf8_address_fails_clearly_when_the_relay_lacks_smtputf8(sqlite_url: str) -> None:
    sink = SmtpSink(smtputf8=False).start()
    daemon = start(sqlite_url, sink, from_address=CHINESE_FROM)
    try:
        send(daemon.smtp_port, report("josé@example.com"), "josé@example.com", utf8=True)
        wait_until(
            lambda: [r.state for r in rows(daemon.engine, outbox_table)] == ["failed"], what="the row failed"
        )
        (row,) = rows(daemon.engine, outbox_table)
        assert row.last_error == (
            f"the relay 127.0.0.1:{sink.port} does not offer SMTPUTF8, which the address josé@example.com "
            "needs (RFC 6531); not sent"
        )
        (event,) = [e for e in rows(daemon.engine, ticket_event_table) if e.kind == "ack_failed"]
        assert "does not offer SMTPUTF8" in json.loads(event.detail)["error"]
        assert sink.messages() == []
        # the relay still takes mail to ASCII addresses on the same connection
        send(daemon.smtp_port, report("lin@example.org", "report-2@example.org"), "lin@example.org")
        (ack,) = wait_until(sink.messages, what="the acknowledgement to an ASCII address")
        assert ack.rcpt_tos == ["lin@example.org"]
    finally:
        daemon.stop()
        sink.stop()


def test_login_without_tls_works_when_allowed(sqlite_url: str) -> None:
    sink = SmtpSink(login=("svc-helpdesk", "pa55word")).start()
    daemon = start(
        sqlite_url,
        sink,
        from_address=ASCII_FROM,
        username="svc-helpdesk",
        password="pa55word",
        allow_plaintext_auth=True,
    )
    try:
        send(daemon.smtp_port, report("lin@example.org"), "lin@example.org")
        (ack,) = wait_until(sink.messages, what="the acknowledgement")
        assert ack.rcpt_tos == ["lin@example.org"] and sink.logins == ["svc-helpdesk"]
    finally:
        daemon.stop()
        sink.stop()


def test_a_row_queued_by_an_older_intaked_with_the_display_name_in_from_is_sent(
    sqlite_url: str, sink: SmtpSink
) -> None:
    from intaked.outbound.dispatcher import dispatch_once
    from intaked.outbound.outbox import enqueue
    from intaked.store.types import utcnow

    intake = Intake(sqlite_url, CHINESE_FROM)
    payload = {  # what an older intaked queued: the whole setting in "from", no "from_name"
        "from": CHINESE_FROM,
        "to": "lin@example.org",
        "to_name": "Lin",
        "subject": "[IT-202612-00001] 印表機卡紙",
        "text": "已收到",
        "message_id": "ack.0123456789abcdef0123456789abcdef@example.com.tw",
        "in_reply_to": None,
        "references": [],
        "auto_submitted": "auto-replied",
    }
    with intake.engine.begin() as conn:
        row = {"kind": "mail", "purpose": "ack", "idempotency_key": "ack:old", "recipient": "lin@example.org"}
        enqueue(conn, [{**row, "payload": payload}], utcnow())
    settings = make_settings(sqlite_url, outbound_mail={"host": "127.0.0.1", "port": sink.port})
    assert dispatch_once(intake.engine, settings) == 1
    (mail,) = sink.messages()
    assert mail.mail_from == HELPDESK
    assert (mail.message["From"].addresses[0].display_name, mail.message["From"].addresses[0].addr_spec) == (
        "IT 服務台",
        HELPDESK,
    )
    assert [r.state for r in rows(intake.engine, outbox_table)] == ["sent"]
