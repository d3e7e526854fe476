"""A mail whose header block a strict parser gives up on (unindented Received continuation lines,
a junk first line), sent over real SMTP: the ticket has the recovered subject and requester, the
defect is recorded, and the acknowledgement arrives at the SMTP sink."""

from __future__ import annotations

import json

import pytest

from intaked.store.models import message_table, ticket_table
from tests.outbound.test_acks import HELPDESK, rows, send, start
from tests.parsing.samples import crlf
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

BROKEN = {
    "received-unindented": crlf(
        "Received: from scanner.example.com (scanner.example.com [192.0.2.10])\n"
        "by mx.example.org (Postfix) with ESMTP id 4F2A1C0042\n"
        "for <helpdesk@example.com>; Mon, 7 Dec 2026 08:00:00 +0800\n"
        "From: Chen Mei <chen.mei@example.com>\n"
        f"To: {HELPDESK}\n"
        "Subject: Printer on 3F jams\n"
        "Message-ID: <jam-3f-smtp@example.com>\n"
        "\n"
        "The printer on the third floor jams on every page.\n"
    ),
    "junk-first-line": crlf(
        "---- Original email message ----\n"
        "From: Chen Mei <chen.mei@example.com>\n"
        f"To: {HELPDESK}\n"
        "Subject: Printer on 3F jams\n"
        "Message-ID: <jam-3f-smtp@example.com>\n"
        "\n"
        "The printer on the third floor jams on every page.\n"
    ),
}


@pytest.mark.parametrize("shape", sorted(BROKEN))
def test_recovered_fields_make_the_ticket_and_its_acknowledgement(
    db_url: str, sink: SmtpSink, shape: str
) -> None:
    daemon = start(db_url, sink)
    try:
        send(daemon.smtp_port, BROKEN[shape], sender="bounces@mx.example.org")
        (ack,) = wait_until(sink.messages, what="the acknowledgement")
        (ticket,) = rows(daemon.engine, ticket_table)
        assert ticket.subject == "Printer on 3F jams"
        assert (ticket.requester_name, ticket.requester_email) == ("Chen Mei", "chen.mei@example.com")
        assert ack.rcpt_tos == ["chen.mei@example.com"]
        assert ticket.number in ack.message["Subject"]
        assert ack.message["In-Reply-To"] == "<jam-3f-smtp@example.com>"
        (message,) = [m for m in rows(daemon.engine, message_table) if m.direction == "in"]
        assert message.header_message_id == "jam-3f-smtp@example.com"
        problems = json.loads(message.parse_problems)
        assert any(p.startswith("header: ") for p in problems), problems
    finally:
        daemon.stop()
