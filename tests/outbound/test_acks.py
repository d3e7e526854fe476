"""Acknowledgements through the outbox: content and headers, threading of replies, loop
protection, rate limit, relay down / 4xx / 5xx, header injection; real SMTP on both sides."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.commands.templates import NOTICES
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import message_table, outbox_table, ticket_event_table, ticket_table
from tests.channels.test_smtp_intake import big5_report
from tests.support.daemon import DaemonThread, make_settings
from tests.support.liveness import this_worker_died
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

HELPDESK = "helpdesk@example.com"


def outbound(sink: SmtpSink) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": sink.port, "from_address": HELPDESK}


def start(url: str, sink: SmtpSink, **sections: Any) -> DaemonThread:
    sections.setdefault("outbox", {"retry_base_seconds": 0.2, "poll_seconds": 0.2})
    return DaemonThread(make_settings(url, outbound_mail=outbound(sink), **sections)).start()


def send(port: int, raw: bytes, sender: str = "ming.wang@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(sender, [HELPDESK], raw)


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(table).order_by(table.c[next(iter(table.primary_key.columns)).name])).all()


def test_ack_content_and_headers(db_url: str, sink: SmtpSink) -> None:
    daemon = start(db_url, sink)
    try:
        send(daemon.smtp_port, big5_report())
        (received,) = wait_until(sink.messages, what="the acknowledgement")
        (ticket,) = rows(daemon.engine, ticket_table)
        msg = received.message
        assert received.rcpt_tos == ["ming.wang@example.com"] and received.mail_from == HELPDESK
        assert msg["Subject"] == f"[{ticket.number}] 產線 MES 當機，碁恒裏無法登入"
        assert msg["In-Reply-To"] == "<big5-report-1@mail.example.com>"
        assert "<big5-report-1@mail.example.com>" in msg["References"]
        assert msg["Auto-Submitted"] == "auto-replied"
        assert msg["To"].addresses[0].addr_spec == "ming.wang@example.com"
        assert msg["To"].addresses[0].display_name == "王小明"
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert ticket.number in text and ticket.number in html
        assert text.index("IT 服務台已收到您的回報") < text.index(
            "The IT service desk has received your report"
        )
        assert "產線 MES 當機，碁恒裏無法登入" in text and "收到時間：" in text and "+0800" in text
        assert "保留主旨中的案件編號" in text and "keep the ticket number" in text
        wait_until(lambda: len(rows(daemon.engine, message_table)) == 2, what="the ack stored")
        out = [m for m in rows(daemon.engine, message_table) if m.direction == "out"]
        assert len(out) == 1 and f"<{out[0].header_message_id}>" == msg["Message-ID"]
        kinds = [e.kind for e in rows(daemon.engine, ticket_event_table) if e.kind != "deadlines_set"]
        assert kinds == ["created", "ack_queued", "ack_sent"]
        (entry,) = rows(daemon.engine, outbox_table)
        assert entry.state == "sent" and entry.provider_id == "2.0.0 Ok: queued as SINK1"
    finally:
        daemon.stop()


def test_reply_to_the_ack_threads_into_the_ticket_without_a_second_ack(db_url: str, sink: SmtpSink) -> None:
    daemon = start(db_url, sink)
    try:
        send(daemon.smtp_port, big5_report())
        (ack,) = wait_until(sink.messages, what="the acknowledgement")
        wait_until(lambda: len(rows(daemon.engine, message_table)) == 2, what="the ack stored")
        reply = (
            f"From: ming.wang@example.com\r\nTo: {HELPDESK}\r\nSubject: Re: 補充\r\n"
            f"Message-ID: <reply-1@example.com>\r\nIn-Reply-To: {ack.message['Message-ID']}\r\n"
            "\r\n補充說明\r\n"
        ).encode()
        send(daemon.smtp_port, reply)
        wait_until(lambda: len(rows(daemon.engine, message_table)) == 3, what="the reply stored")
        assert len(rows(daemon.engine, ticket_table)) == 1
        assert {m.ticket_id for m in rows(daemon.engine, message_table)} == {
            rows(daemon.engine, ticket_table)[0].id
        }
        assert len(sink.messages()) == 1 and len(rows(daemon.engine, outbox_table)) == 1
    finally:
        daemon.stop()


def mail(extra_headers: str = "", sender: str = "lin@example.com", mid: str = "m1@example.com") -> bytes:
    return (
        f"From: Lin <{sender}>\r\nTo: {HELPDESK}\r\nSubject: 問題\r\nMessage-ID: <{mid}>\r\n{extra_headers}"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n內容\r\n"
    ).encode()


class Intake:
    """Ledger-level intake for decision tests: no sockets needed to see what gets queued."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        upgrade(self.engine)
        self.settings = make_settings(url, outbound_mail={"from_address": HELPDESK})

    def ingest(self, raw: bytes, envelope_from: str | None = "lin@example.com") -> None:
        insert_items(self.engine, [RawItem("smtp", raw, envelope_from=envelope_from)])
        while process_once(self.engine, self.settings):
            pass


@pytest.fixture
def intake(db_url: str) -> Iterator[Intake]:
    it = Intake(db_url)
    yield it
    it.engine.dispose()


@pytest.mark.parametrize(
    ("headers", "sender", "envelope", "reason"),
    [
        (
            "Auto-Submitted: auto-replied\r\n",
            "lin@example.com",
            "lin@example.com",
            "Auto-Submitted: auto-replied",
        ),
        ("Auto-Submitted: auto-generated\r\n", "lin@example.com", "lin@example.com", "Auto-Submitted"),
        ("X-Autoreply: yes\r\n", "lin@example.com", "lin@example.com", "X-Autoreply"),
        ("X-Autorespond: vacation\r\n", "lin@example.com", "lin@example.com", "X-Autorespond"),
        (
            "X-Auto-Response-Suppress: OOF\r\n",
            "lin@example.com",
            "lin@example.com",
            "X-Auto-Response-Suppress",
        ),
        (
            "X-Auto-Response-Suppress: All\r\n",
            "lin@example.com",
            "lin@example.com",
            "X-Auto-Response-Suppress",
        ),
        ("Precedence: bulk\r\n", "lin@example.com", "lin@example.com", "Precedence: bulk"),
        ("Precedence: junk\r\n", "lin@example.com", "lin@example.com", "Precedence: junk"),
        ("Precedence: list\r\n", "lin@example.com", "lin@example.com", "Precedence: list"),
        ("List-Id: <it.lists.example.com>\r\n", "lin@example.com", "lin@example.com", "List-Id"),
        ("List-Unsubscribe: <mailto:u@x>\r\n", "lin@example.com", "lin@example.com", "List-Unsubscribe"),
        ("", "MAILER-DAEMON@mx.example.com", "", "null envelope sender"),
        ("", "MAILER-DAEMON@mx.example.com", "mx@example.com", "a mail system"),
        ("", "postmaster@mx.example.com", "mx@example.com", "a mail system"),
        ("Return-Path: <>\r\n", "lin@example.com", None, "null Return-Path"),
        ("", HELPDESK, HELPDESK, "our own address"),
        (
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n',
            "lin@example.com",
            "lin@example.com",
            "delivery status notification",
        ),
    ],
)
def test_no_ack_for_machines_lists_bounces_or_ourselves(
    intake: Intake, headers: str, sender: str, envelope: str | None, reason: str
) -> None:
    intake.ingest(mail(headers, sender=sender), envelope_from=envelope)
    (ticket,) = rows(intake.engine, ticket_table)
    assert rows(intake.engine, outbox_table) == [], "the ticket exists, the acknowledgement does not"
    events = [e for e in rows(intake.engine, ticket_event_table) if e.kind == "ack_suppressed"]
    assert len(events) == 1 and reason in events[0].detail
    assert ticket.status == "new"


def test_auto_submitted_no_is_a_person(intake: Intake) -> None:
    intake.ingest(mail("Auto-Submitted: no\r\n"))
    assert len(rows(intake.engine, outbox_table)) == 1


def test_rate_limit_per_sender_per_hour(intake: Intake) -> None:
    for n in range(12):
        intake.ingest(mail(mid=f"rate-{n}@example.com"))
    assert len(rows(intake.engine, ticket_table)) == 12
    assert len(rows(intake.engine, outbox_table)) == 10
    suppressed = [e for e in rows(intake.engine, ticket_event_table) if e.kind == "ack_suppressed"]
    assert len(suppressed) == 2 and all("rate limit" in e.detail for e in suppressed)
    intake.ingest(mail(sender="chen@example.com", mid="other@example.com"))
    assert len(rows(intake.engine, outbox_table)) == 11, "another sender is not limited"


def test_a_bounce_of_our_ack_lands_on_its_ticket(intake: Intake) -> None:
    intake.ingest(mail())
    (entry,) = rows(intake.engine, outbox_table)
    import json

    ack_id = json.loads(entry.payload)["message_id"]
    # What the dispatcher stores once the ack was sent (the mail's Message-ID, so bounces and replies thread).
    from intaked.outbound.outbox import claim_due, mark_sent

    (claimed,) = claim_due(intake.engine, "mail", 10)
    mark_sent(intake.engine, claimed, "250 ok")
    bounce = (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: helpdesk@example.com\r\n"
        "Subject: Undelivered Mail Returned\r\n"
        "Message-ID: <bounce-1@mx.example.com>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; lin@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {HELPDESK}\r\nMessage-ID: <{ack_id}>\r\n"
        "Subject: [IT] ack\r\n\r\n--b--\r\n"
    ).encode()
    intake.ingest(bounce, envelope_from="")
    assert len(rows(intake.engine, ticket_table)) == 1, "no new ticket for the bounce"
    kinds = [e.kind for e in rows(intake.engine, ticket_event_table)]
    assert "message_added" in kinds and len(rows(intake.engine, outbox_table)) == 1


def test_relay_down_then_back_delivers_exactly_once(db_url: str) -> None:
    sink = SmtpSink()  # not started: the relay is down
    daemon = start(db_url, sink)
    try:
        send(daemon.smtp_port, big5_report())
        wait_until(
            lambda: (r := rows(daemon.engine, outbox_table)) and r[0].attempts >= 2, what="failed attempts"
        )
        assert rows(daemon.engine, outbox_table)[0].state in ("pending", "sending")
        sink.start()
        wait_until(sink.messages, timeout=30, what="the ack after the relay came back")
        wait_until(lambda: rows(daemon.engine, outbox_table)[0].state == "sent", what="marked sent")
        assert len(sink.messages()) == 1
        kinds = [e.kind for e in rows(daemon.engine, ticket_event_table)]
        assert kinds.count("ack_sent") == 1
    finally:
        daemon.stop()
        sink.stop()


def test_4xx_is_retried_and_5xx_is_recorded_not_retried(sqlite_url: str, sink: SmtpSink) -> None:
    sink.mode = "tempfail"
    daemon = start(sqlite_url, sink)
    try:
        send(daemon.smtp_port, big5_report())
        wait_until(lambda: sink.attempts >= 2, what="retries after 451")
        assert "451 4.3.0 try again later" in rows(daemon.engine, outbox_table)[0].last_error
        sink.mode = "permfail"
        wait_until(lambda: rows(daemon.engine, outbox_table)[0].state == "failed", timeout=30, what="failed")
        attempts = sink.attempts
        entry = rows(daemon.engine, outbox_table)[0]
        assert "550 5.1.1" in entry.last_error
        failed = [e for e in rows(daemon.engine, ticket_event_table) if e.kind == "ack_failed"]
        assert len(failed) == 1 and "550 5.1.1" in failed[0].detail
        import time

        time.sleep(1.0)  # several dispatcher passes (it polls every 0.2 s): a failed row stays failed
        assert sink.attempts == attempts and sink.messages() == []
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    "subject",
    [
        "=?utf-8?q?x=0D=0ABcc:_victim@example.com?=",
        "=?utf-8?b?eA0KQmNjOiB2aWN0aW1AZXhhbXBsZS5jb20=?=",
        "plain\r\n Bcc: victim@example.com",
    ],
)
def test_subjects_never_inject_headers(db_url: str, sink: SmtpSink, subject: str) -> None:
    daemon = start(db_url, sink)
    try:
        head = f"From: lin@example.com\r\nTo: {HELPDESK}\r\nSubject: {subject}\r\nMessage-ID: <inj@x>\r\n"
        raw = head + "\r\nbody\r\n"
        send(daemon.smtp_port, raw.encode(), sender="lin@example.com")
        (received,) = wait_until(sink.messages, what="the acknowledgement")
        head = received.raw.split(b"\r\n\r\n", 1)[0]
        names = [
            line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line and line[:1] not in b" \t"
        ]
        assert b"bcc" not in names and names.count(b"subject") == 1
        assert received.rcpt_tos == ["lin@example.com"]
    finally:
        daemon.stop()


def test_templates_preview_and_outbox_list(intake: Intake, db_url: str, tmp_path: Any, capsys: Any) -> None:
    from intaked.cli import main

    intake.ingest(mail())
    (ticket,) = rows(intake.engine, ticket_table)
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert (
        main(["templates", "preview", "ack", "--ticket", ticket.number, "--config", str(config), "--html"])
        == 0
    )
    out = capsys.readouterr().out
    assert f"Subject: [{ticket.number}] 問題" in out and "To: lin@example.com" in out
    assert "IT 服務台已收到您的回報" in out and "<strong>" in out
    assert main(["templates", "preview", "ack", "--ticket", "IT-000000-00000", "--config", str(config)]) == 1
    capsys.readouterr()
    for notice in NOTICES:  # every notice renders for the ticket, the event's values as examples
        assert main(["templates", "preview", notice, "--ticket", ticket.number, "--config", str(config)]) == 0
        shown = capsys.readouterr().out
        assert "Subject: " in shown and ticket.number in shown, notice
    custom = tmp_path / "mine"
    custom.mkdir()
    (custom / "resolved.txt.j2").write_text("{{ ticket.number }} {{ no_such_value }}\n", encoding="utf-8")
    config.write_text(f'[database]\nurl = "{db_url}"\n[acknowledgements]\ntemplates_dir = "{custom}"\n')
    assert main(["templates", "preview", "resolved", "--ticket", ticket.number, "--config", str(config)]) == 2
    assert "'no_such_value' is undefined" in capsys.readouterr().err
    assert main(["outbox", "list", "--config", str(config)]) == 0
    listing = capsys.readouterr().out
    assert "pending" in listing and "ack" in listing and "lin@example.com" in listing


def test_crash_between_send_and_mark_repeats_the_mail_never_loses_it(intake: Intake, sink: SmtpSink) -> None:
    from intaked.outbound.compose import build_message
    from intaked.outbound.dispatcher import dispatch_once
    from intaked.outbound.mailer import SmtpMailer
    from intaked.outbound.outbox import claim_due, recover_abandoned
    from intaked.store.types import utcnow

    intake.ingest(mail())
    settings = make_settings(str(intake.engine.url), outbound_mail=outbound(sink))
    (row,) = claim_due(intake.engine, "mail", 10)
    with SmtpMailer(settings.outbound_mail) as mailer:  # sent ... and the process dies before marking it
        mailer.send(build_message(row.payload, utcnow()), row.payload["from"], row.recipient)
    this_worker_died(intake.engine)
    assert recover_abandoned(intake.engine, lease_seconds=5, timeout_seconds=600) == 1
    assert dispatch_once(intake.engine, settings) == 1
    ids = [r.message["Message-ID"] for r in sink.messages()]
    assert len(ids) == 2 and len(set(ids)) == 1, "the same mail twice (same Message-ID), never zero times"
    assert rows(intake.engine, outbox_table)[0].state == "sent"


def test_starttls_required_but_not_offered_sends_nothing(intake: Intake, sink: SmtpSink) -> None:
    from intaked.outbound.dispatcher import dispatch_once

    intake.ingest(mail())
    from intaked.ports.mail import RelayUnavailable

    settings = make_settings(str(intake.engine.url), outbound_mail={**outbound(sink), "starttls": True})
    with pytest.raises(RelayUnavailable):
        dispatch_once(intake.engine, settings)
    (entry,) = rows(intake.engine, outbox_table)
    assert entry.state == "pending" and "does not offer STARTTLS" in entry.last_error
    assert sink.messages() == [] and sink.attempts == 0


def test_reply_notice_only_when_configured(db_url: str) -> None:
    intake = Intake(db_url)
    try:
        intake.ingest(mail(mid="first@example.com"))
        intake.ingest(mail("In-Reply-To: <first@example.com>\r\n", mid="second@example.com"))
        assert [r.purpose for r in rows(intake.engine, outbox_table)] == ["ack"], "off by default"
        intake.settings = make_settings(
            db_url, outbound_mail={"from_address": HELPDESK}, acknowledgements={"notify_on_reply": True}
        )
        intake.ingest(mail("In-Reply-To: <first@example.com>\r\n", mid="third@example.com"))
        notices = [r for r in rows(intake.engine, outbox_table) if r.purpose == "reply_notice"]
        assert len(notices) == 1 and "您的回覆已加入案件" in notices[0].payload
        assert len(rows(intake.engine, ticket_table)) == 1
    finally:
        intake.engine.dispose()


def test_a_kept_relay_connection_that_died_is_replaced_at_once(intake: Intake, sink: SmtpSink) -> None:
    from intaked.outbound.dispatcher import dispatch_once
    from intaked.outbound.mailer import SmtpMailer

    settings = make_settings(str(intake.engine.url), outbound_mail=outbound(sink))
    with SmtpMailer(settings.outbound_mail) as mailer:
        intake.ingest(mail(mid="kept-1@example.com"))
        assert dispatch_once(intake.engine, settings, mailer) == 1
        sink.stop()  # the relay restarts: the connection we kept is gone
        sink.start()
        intake.ingest(mail(mid="kept-2@example.com"))
        assert dispatch_once(intake.engine, settings, mailer) == 1
    assert [r.state for r in rows(intake.engine, outbox_table)] == ["sent", "sent"]
    assert len(sink.messages()) == 2


def test_mark_sent_with_a_lost_claim_records_nothing(intake: Intake) -> None:
    from intaked.outbound.outbox import claim_due, mark_sent, recover_abandoned

    intake.ingest(mail())
    (stale,) = claim_due(intake.engine, "mail", 10)
    this_worker_died(intake.engine)
    recover_abandoned(intake.engine, lease_seconds=5, timeout_seconds=600)  # taken over
    (current,) = claim_due(intake.engine, "mail", 10)
    assert mark_sent(intake.engine, stale, "250 late") is False
    assert [m.direction for m in rows(intake.engine, message_table)] == ["in"]
    assert "ack_sent" not in [e.kind for e in rows(intake.engine, ticket_event_table)]
    assert mark_sent(intake.engine, current, "250 ok") is True
    assert [m.direction for m in rows(intake.engine, message_table)] == ["in", "out"]
    assert [e.kind for e in rows(intake.engine, ticket_event_table)].count("ack_sent") == 1


def test_relay_down_defers_the_whole_batch_after_one_try(intake: Intake, sink: SmtpSink) -> None:
    from intaked.outbound.dispatcher import dispatch_once
    from intaked.ports.mail import RelayUnavailable

    for n in range(5):
        intake.ingest(mail(sender=f"user{n}@example.com", mid=f"down-{n}@example.com"))
    sink.stop()
    settings = make_settings(
        str(intake.engine.url), outbound_mail=outbound(sink), outbox={"retry_base_seconds": 0.05}
    )
    with pytest.raises(RelayUnavailable):
        dispatch_once(intake.engine, settings)
    deferred = rows(intake.engine, outbox_table)
    assert [r.state for r in deferred] == ["pending"] * 5
    assert all("unreachable" in r.last_error and r.next_attempt_at is not None for r in deferred)
    sink.start()
    wait_until(
        lambda: dispatch_once(intake.engine, settings) == 0 and len(sink.messages()) == 5, what="all 5 acks"
    )
    assert [r.state for r in rows(intake.engine, outbox_table)] == ["sent"] * 5
    assert len({r.message["Message-ID"] for r in sink.messages()}) == 5


def test_an_outage_costs_one_relay_attempt_per_pause_not_one_per_mail(db_url: str) -> None:
    """A relay that greets with 421 (shutting down): the dispatcher must not knock once per queued
    mail; every queued acknowledgement waits, none is marked failed."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    connections = 0

    def relay() -> None:
        nonlocal connections
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections += 1
            with conn:
                conn.sendall(b"421 4.3.2 relay.example.com shutting down\r\n")

    threading.Thread(target=relay, daemon=True).start()
    port = listener.getsockname()[1]
    daemon = DaemonThread(
        make_settings(
            db_url,
            outbound_mail={"host": "127.0.0.1", "port": port, "from_address": HELPDESK},
            outbox={"retry_base_seconds": 0.5, "poll_seconds": 0.1},
        )
    ).start()
    try:
        for n in range(20):
            send(
                daemon.smtp_port,
                mail(sender=f"user{n}@example.com", mid=f"out-{n}@example.com"),
                f"user{n}@example.com",
            )
        wait_until(
            lambda: len(r := rows(daemon.engine, outbox_table)) == 20 and all(e.attempts >= 1 for e in r),
            what="every acknowledgement tried",
        )
        entries = rows(daemon.engine, outbox_table)
        assert {e.state for e in entries} <= {"pending", "sending"}
        assert all("421" in (e.last_error or "") for e in entries if e.state == "pending")
        assert connections < 20, f"{connections} connections for 20 queued mails: no pause on an outage"
    finally:
        daemon.stop()
        listener.close()
