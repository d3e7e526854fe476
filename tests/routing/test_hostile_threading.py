"""Hostile and automatic mail over real SMTP (issue 14, points 2-4), SQLite and PostgreSQL:

- a ticket-number tag joins only mail from someone on the ticket or inside; a stranger's tagged
  mail opens a new ticket linked to the one it named;
- out-of-office replies and bounces of the "resolved" notice join the ticket but never reopen it,
  never cancel its auto-close and are never acknowledged;
- mail our MTA flagged as spam is kept, quarantined (status ``spam``): no acknowledgement, no
  deadline, no page, never threaded; ``intaked ticket release`` makes it a normal new ticket.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.cli import main
from intaked.sla.context import load_context
from intaked.sla.enforcement import check_due
from intaked.sla.sweeper import sweep
from intaked.sla.tracker import sync_tickets
from intaked.store.models import message_table, outbox_table, page_table, ticket_event_table, ticket_table
from intaked.tickets.lifecycle import resolve
from tests.sla.test_tracker import XMAS_EVE, at, local
from tests.support.daemon import DaemonThread, make_settings
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

HELPDESK = "helpdesk@example.com"
OUR_MTA = "mx1.corp.example"


def start(url: str, sink: SmtpSink, **sections: Any) -> DaemonThread:
    sections.setdefault("outbox", {"retry_base_seconds": 0.2, "poll_seconds": 0.2})
    outbound = {"host": "127.0.0.1", "port": sink.port, "from_address": HELPDESK}
    return DaemonThread(make_settings(url, outbound_mail=outbound, **sections)).start()


def send(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(sender, [HELPDESK], raw)


def mail(sender: str, subject: str, mid: str, *, extra: str = "", body: str = "內容") -> bytes:
    return (
        f"From: <{sender}>\r\nTo: {HELPDESK}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def tickets(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(ticket_table).order_by(ticket_table.c.id)).mappings())


def ticket(engine: Engine, number: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(ticket_table).where(ticket_table.c.number == number)).mappings().one()


def events(engine: Engine, ticket_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ticket_event_table)
                .where(ticket_event_table.c.ticket_id == ticket_id)
                .order_by(ticket_event_table.c.id)
            ).mappings()
        )


def kinds(engine: Engine, ticket_id: int) -> list[str]:
    return [e["kind"] for e in events(engine, ticket_id)]


def inbound(engine: Engine, ticket_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(message_table)
                .where(message_table.c.ticket_id == ticket_id, message_table.c.direction == "in")
                .order_by(message_table.c.id)
            ).mappings()
        )


def outbox(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(outbox_table).order_by(outbox_table.c.id)).mappings())


def acks_to(sink: SmtpSink, address: str) -> list[Any]:
    return [m for m in sink.messages() if m.rcpt_tos == [address]]


def file_report(
    daemon: DaemonThread, sink: SmtpSink, sender: str = "lin@example.com", extra: str = ""
) -> Any:
    """A report by SMTP, acknowledged at the sink: its ticket row."""
    before = len(acks_to(sink, sender))
    send(daemon.smtp_port, mail(sender, "ERP 無法登入", f"report-{before}@example.com", extra=extra), sender)
    (*_, ack) = wait_until(lambda: acks_to(sink, sender)[before:], what="the acknowledgement")
    number = ack.message["Subject"].split("]")[0].strip("[")
    return ticket(daemon.engine, number)


# -- point 2: a tag joins only mail from someone on the ticket ---------------------------------


def test_a_strangers_tag_opens_a_new_ticket_linked_to_the_one_it_named(db_url: str, sink: SmtpSink) -> None:
    daemon = start(db_url, sink)
    try:
        original = file_report(daemon, sink)
        resolve(daemon.engine, load_context(daemon.engine, daemon.settings), original["number"], by="Wang")
        attack = mail("attacker@evil.example", f"Re: [{original['number']}] ERP", "evil-1@evil.example")
        send(daemon.smtp_port, attack, "attacker@evil.example")
        wait_until(lambda: len(tickets(daemon.engine)) == 2, what="the stranger's ticket")
        first, second = tickets(daemon.engine)
        assert first["status"] == "resolved", "a stranger cannot reopen a ticket"
        assert "reopened" not in kinds(daemon.engine, first["id"])
        assert [m["sender"] for m in inbound(daemon.engine, first["id"])] == ["lin@example.com"]
        assert second["status"] == "new" and second["parent_id"] == first["id"]
        assert second["requester_email"] == "attacker@evil.example"
        (refused,) = [e for e in events(daemon.engine, second["id"]) if e["kind"] == "tag_not_trusted"]
        detail = json.loads(refused["detail"])
        assert detail["from"] == "attacker@evil.example" and detail["tagged"] == original["number"]
        assert "neither on the ticket nor internal" in detail["reason"]
        (linked,) = [e for e in events(daemon.engine, first["id"]) if e["kind"] == "linked_ticket_opened"]
        assert json.loads(linked["after"])["number"] == second["number"]
        (ack,) = wait_until(lambda: acks_to(sink, "attacker@evil.example"), what="the stranger's ack")
        assert ack.message["Subject"].startswith(f"[{second['number']}]"), "acknowledged as its own ticket"
    finally:
        daemon.stop()


def test_a_tag_joins_from_the_requester_a_cc_on_the_ticket_an_internal_address_or_a_reply(
    db_url: str, sink: SmtpSink
) -> None:
    daemon = start(db_url, sink, trust={"internal_domains": ["corp.example"]})
    try:
        original = file_report(daemon, sink, extra="Cc: Chen <chen@partner.example>\r\n")
        number = original["number"]
        (ack,) = acks_to(sink, "lin@example.com")
        joining = [
            ("lin@example.com", mail("lin@example.com", f"Re: [{number}]", "j1@example.com")),
            ("chen@partner.example", mail("chen@partner.example", f"Re: [{number}]", "j2@partner.example")),
            ("boss@it.corp.example", mail("boss@it.corp.example", f"[{number}] 我來看", "j3@corp.example")),
            (
                "someone@elsewhere.example",
                mail(
                    "someone@elsewhere.example",
                    "Re: forwarded",
                    "j4@elsewhere.example",
                    extra=f"In-Reply-To: {ack.message['Message-ID']}\r\n",
                ),
            ),
        ]
        for sender, raw in joining:
            send(daemon.smtp_port, raw, sender)
        wait_until(lambda: len(inbound(daemon.engine, original["id"])) == 5, what="four replies joined")
        assert len(tickets(daemon.engine)) == 1
        assert "tag_not_trusted" not in kinds(daemon.engine, original["id"])
    finally:
        daemon.stop()


def test_a_forged_internal_sender_cannot_join_by_tag_when_our_mta_authenticates_mail(
    db_url: str, sink: SmtpSink
) -> None:
    """Most requesters are internal, so From: alone must not vouch for them once our MTA's
    Authentication-Results are read: the requester's own address, written by an outsider, opens a
    new linked ticket; the same reply with our MTA's spf=pass joins."""
    daemon = start(db_url, sink, trust={"internal_domains": ["corp.example"], "authserv_id": OUR_MTA})
    try:
        original = file_report(daemon, sink, sender="mei@corp.example")
        number = original["number"]
        forged = mail(
            "mei@corp.example",
            f"Re: [{number}] 已解決,請關閉",
            "forged-1@evil.example",
            extra=f"Authentication-Results: {OUR_MTA}; spf=fail smtp.mailfrom=attacker@evil.example\r\n",
        )
        send(daemon.smtp_port, forged, "attacker@evil.example")
        wait_until(lambda: len(tickets(daemon.engine)) == 2, what="the forged mail filed on its own")
        first, second = tickets(daemon.engine)
        assert second["parent_id"] == first["id"]
        assert [m["header_message_id"] for m in inbound(daemon.engine, first["id"])] == [
            "report-0@example.com"
        ]
        (refused,) = [e for e in events(daemon.engine, second["id"]) if e["kind"] == "tag_not_trusted"]
        reason = json.loads(refused["detail"])["reason"]
        assert "internal but our MTA did not authenticate it" in reason and "spf=fail" in reason

        genuine = mail(
            "mei@corp.example",
            f"Re: [{number}] 補充",
            "genuine-1@corp.example",
            extra=f"Authentication-Results: {OUR_MTA}; spf=pass smtp.mailfrom=mei@corp.example\r\n",
        )
        send(daemon.smtp_port, genuine, "mei@corp.example")
        wait_until(lambda: len(inbound(daemon.engine, first["id"])) == 2, what="the genuine reply joined")
        assert len(tickets(daemon.engine)) == 2
    finally:
        daemon.stop()


# -- point 3: machine mail never changes a ticket -----------------------------------------------


def out_of_office(number: str, notice_id: str) -> bytes:
    return mail(
        "lin@example.com",
        f"Automatic reply: [{number}] 已解決",
        "ooo-1@example.com",
        extra=f"In-Reply-To: {notice_id}\r\nAuto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n",
        body="I am out of the office until January.",
    )


def bounce_of(notice_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {HELPDESK}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.example.com>\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; lin@example.com\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: {HELPDESK}\r\nMessage-ID: {notice_id}\r\n"
        "Subject: resolved\r\n\r\n--b--\r\n"
    ).encode()


def test_an_out_of_office_reply_and_a_bounce_of_the_resolved_notice_change_nothing(
    db_url: str, sink: SmtpSink
) -> None:
    daemon = start(db_url, sink)
    try:
        original = file_report(daemon, sink)
        number = original["number"]
        ctx = load_context(daemon.engine, daemon.settings)
        resolve(daemon.engine, ctx, number, note="已重設密碼", by="Wang", now=XMAS_EVE.replace(minute=30))
        (notice,) = wait_until(lambda: acks_to(sink, "lin@example.com")[1:], what="the resolved notice")
        notice_id = notice.message["Message-ID"]
        resolved = ticket(daemon.engine, number)
        assert local(resolved["auto_close_at"]) == at(30, 16, 30)

        send(daemon.smtp_port, out_of_office(number, notice_id), "lin@example.com")
        send(daemon.smtp_port, bounce_of(notice_id), "")
        wait_until(lambda: len(inbound(daemon.engine, original["id"])) == 3, what="both on the ticket")
        sync_tickets(daemon.engine, ctx, now=at(28, 9))

        after = ticket(daemon.engine, number)
        assert len(tickets(daemon.engine)) == 1
        assert after["status"] == "resolved", "machine mail never reopens a ticket"
        assert after["auto_close_at"] == resolved["auto_close_at"] and after["resolved_at"] is not None
        assert "reopened" not in kinds(daemon.engine, original["id"])
        added = [
            json.loads(e["after"])
            for e in events(daemon.engine, original["id"])
            if e["kind"] == "message_added"
        ]
        assert [a["message_id"] for a in added] == ["ooo-1@example.com", "dsn-1@mx.example.com"]
        assert all(a["machine"] for a in added)
        assert [row["purpose"] for row in outbox(daemon.engine)] == ["ack", "resolved_notice"], "no acks"

        assert sweep(daemon.engine, at(30, 16, 29)) == []
        assert [c.number for c in sweep(daemon.engine, at(30, 16, 30))] == [number]
        assert ticket(daemon.engine, number)["status"] == "closed"
        assert len(acks_to(sink, "lin@example.com")) == 2, "the ack and the resolved notice only"
    finally:
        daemon.stop()


# -- point 4: spam is kept, quarantined, released by a person ------------------------------------


def config_file(tmp_path: Path, url: str, sink: SmtpSink) -> Path:
    path = tmp_path / "intaked.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n[logging]\nlevel = "warning"\n'
        f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\nfrom_address = "{HELPDESK}"\n'
    )
    return path


PAGING: dict[str, Any] = {
    "webhooks": {"public_url": "https://intaked.example.com"},
    "people": {"chen": {"phone": "+886911111111", "email": "chen@example.com"}},
    "oncall": {"qrc_duty": {"people": ["chen"]}},
    "paging": {
        "fallback_email": "qrc@example.com",
        "policies": {
            "P1": {"repeat": 1, "steps": [{"targets": [{"oncall": "qrc_duty"}], "channels": ["sms"]}]}
        },
    },
    "routing": {"rules": [{"name": "down", "keywords": ["產線停工"], "suggested_priority": "P1"}]},
    "trust": {"internal_domains": ["corp.example"], "authserv_id": OUR_MTA},
}


def trusted_p1(mid: str, spam_header: str = "") -> bytes:
    return (
        f"Authentication-Results: {OUR_MTA}; spf=pass smtp.mailfrom=mei@corp.example\r\n{spam_header}"
        f"From: <mei@corp.example>\r\nTo: {HELPDESK}\r\nSubject: 緊急\r\nMessage-ID: <{mid}>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n三廠產線停工\r\n"
    ).encode()


@pytest.mark.parametrize(
    "header", ["X-Spam-Flag: YES\r\n", "X-Spam-Status: Yes, score=12.3 required=5.0\r\n"]
)
def test_spam_is_kept_but_not_acknowledged_timed_or_paged_and_can_be_released(
    db_url: str, sink: SmtpSink, tmp_path: Path, capsys: Any, header: str
) -> None:
    daemon = start(db_url, sink, **PAGING)
    try:
        send(daemon.smtp_port, trusted_p1("ham-1@corp.example"), "mei@corp.example")
        send(daemon.smtp_port, trusted_p1("spam-1@corp.example", header), "mei@corp.example")
        wait_until(lambda: len(tickets(daemon.engine)) == 2, what="both stored")
        ham, spam = tickets(daemon.engine)
        with daemon.engine.connect() as conn:
            paged = [row.ticket_id for row in conn.execute(select(page_table.c.ticket_id))]
        assert paged == [ham["id"]], "the same report without the spam flag pages; the spam does not"
        assert spam["status"] == "spam" and header.split(":")[0] in spam["spam_reason"]
        assert spam["triage_due_at"] is None and spam["sla_next_check_at"] is None
        assert spam["suggestion_trusted"] is False
        assert [m["header_message_id"] for m in inbound(daemon.engine, spam["id"])] == ["spam-1@corp.example"]
        spam_kinds = kinds(daemon.engine, spam["id"])
        assert (
            "spam_flagged" in spam_kinds and "ack_suppressed" in spam_kinds and "ack_queued" not in spam_kinds
        )
        assert [row["ticket_id"] for row in outbox(daemon.engine) if row["purpose"] == "ack"] == [ham["id"]]

        late = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
        ctx = load_context(daemon.engine, daemon.settings)
        sync_tickets(daemon.engine, ctx, now=late)
        check_due(daemon.engine, ctx, now=late)
        assert ticket(daemon.engine, spam["number"])["triage_breached_at"] is None, "no deadline, no breach"

        config = config_file(tmp_path, db_url, sink)
        capsys.readouterr()
        assert main(["tickets", "list", "--status", "spam", "--json", "--config", str(config)]) == 0
        assert [t["number"] for t in json.loads(capsys.readouterr().out)] == [spam["number"]]

        assert main(["ticket", "release", spam["number"], "--by", "Wang", "--config", str(config)]) == 0
        released = ticket(daemon.engine, spam["number"])
        assert released["status"] == "new" and released["released_at"] is not None
        assert released["triage_due_at"] == released["released_at"] + dt.timedelta(minutes=15)
        acks = wait_until(
            lambda: len(acks_to(sink, "mei@corp.example")) == 2 and acks_to(sink, "mei@corp.example")
        )
        assert sorted(a.message["Subject"].split("]")[0] for a in acks) == sorted(
            f"[{t['number']}" for t in (ham, spam)
        )
        assert "released" in kinds(daemon.engine, spam["id"])
        assert main(["ticket", "release", spam["number"], "--config", str(config)]) != 0, "only once"
    finally:
        daemon.stop()


def test_spam_never_joins_a_ticket_by_its_tag_and_rspamd_scores_are_configurable(
    db_url: str, sink: SmtpSink
) -> None:
    rules = [{"header": "X-Spam-Flag", "pattern": "^yes"}, {"header": "X-Rspamd-Score", "score_at_least": 15}]
    daemon = start(db_url, sink, trust={"spam": {"rules": rules}})
    try:
        original = file_report(daemon, sink)
        number = original["number"]
        resolve(daemon.engine, load_context(daemon.engine, daemon.settings), number, by="Wang")
        spam = mail(
            "lin@example.com", f"Re: [{number}] WIN", "s1@example.com", extra="X-Rspamd-Score: 16.20\r\n"
        )
        ham = mail(
            "lin@example.com", f"Re: [{number}] 還是不行", "h1@example.com", extra="X-Rspamd-Score: 3.1\r\n"
        )
        send(daemon.smtp_port, spam, "lin@example.com")
        wait_until(lambda: len(tickets(daemon.engine)) == 2, what="the spam's own ticket")
        assert ticket(daemon.engine, number)["status"] == "resolved", "spam never reopens a ticket"
        quarantined = tickets(daemon.engine)[1]
        assert quarantined["status"] == "spam" and quarantined["parent_id"] == original["id"]
        assert quarantined["spam_reason"] == "X-Rspamd-Score: 16.20"
        send(daemon.smtp_port, ham, "lin@example.com")
        wait_until(lambda: len(inbound(daemon.engine, original["id"])) == 2, what="the real reply joined")
        assert ticket(daemon.engine, number)["status"] == "open"
        assert len(tickets(daemon.engine)) == 2
    finally:
        daemon.stop()
