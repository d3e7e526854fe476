"""The paths of MAIL FROM and RCPT TO: intaked's plain-path reader gives exactly what aiosmtpd's
own parser gives, and every other form (null path, quoted local part, address literal, UTF-8,
garbage) still reaches aiosmtpd's parser; the envelope stored is what the client sent."""

from __future__ import annotations

import asyncio
import json
import smtplib
from collections.abc import Callable, Iterator

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from intaked.channels.smtp import _IntakeSMTP
from intaked.store.models import InboundItem, Ticket, TicketEvent
from tests.channels.test_smtp_intake import HELPDESK, big5_report
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

PATHS = [
    "<ming.wang@example.com>",
    "<ming.wang@example.com> SIZE=1234 BODY=8BITMIME",
    "<Ming.Wang+it=desk@Mail.Example.COM>",
    "<a!#$%&'*/=?^_`{|}~-@x-y.example>",
    "<>",
    "<> SIZE=10",
    '<"ming wang"@example.com>',
    "<ming@[192.0.2.7]>",
    "<王小明@例子.台灣>",
    " <ming@example.com>",
    "ming@example.com",
    "<ming@example.com",
    "<.ming@example.com>",
    "<ming..wang@example.com>",
    "<ming@example..com>",
    "<ming@-example.com>",
    "<@relay.example:ming@example.com>",
    "<ming@example.com>>",
    "<ming@example.com> (a comment) SIZE=5",
    "<ming@example.com>\tSIZE=5",
    '"',
    f"<{'x' * 64}@example.com>",
    f"<{'x' * 65}@example.com>",
    "",
]


@pytest.fixture(scope="module")
def server() -> Iterator[SMTP]:
    loop = asyncio.new_event_loop()
    try:
        yield _IntakeSMTP(object(), line_length_limit=1002, loop=loop)
    finally:
        loop.close()


def reading(parse: Callable[[str], object], path: str) -> object:
    """What a parser makes of ``path``: its result, or the kind of error it raised (the e-mail
    package's parser fails on some garbage, such as a lone quote; aiosmtpd then answers 500)."""
    try:
        return parse(path)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("path", PATHS)
def test_a_path_reads_as_aiosmtpd_reads_it(server: SMTP, path: str) -> None:
    assert reading(server._getaddr, path) == reading(lambda p: SMTP._getaddr(server, p), path)


PATH_CHARS = st.sampled_from([*'ab.Z9-_+=@<>"[] :!%/\\(),;é王\t'])


@settings(max_examples=3000, deadline=None)
@given(st.text(PATH_CHARS, max_size=24))
def test_any_path_reads_as_aiosmtpd_reads_it(server: SMTP, path: str) -> None:
    assert reading(server._getaddr, path) == reading(lambda p: SMTP._getaddr(server, p), path)


ENVELOPES = [
    ("", HELPDESK),  # a bounce: the null reverse path
    ('"ming wang"@example.com', HELPDESK),
    ("ming@[192.0.2.7]", HELPDESK),
    ("ming.wang+vpn@example.com", "HelpDesk@Example.com"),
]


def test_every_form_of_path_reaches_the_ledger_as_sent(db_url: str) -> None:
    daemon = DaemonThread(make_settings(db_url, smtp_intake={"recipients": [HELPDESK]})).start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
            for n, (sender, recipient) in enumerate(ENVELOPES):
                raw = big5_report().replace(b"big5-report-1@", f"path-{n}@".encode())
                assert client.sendmail(sender, [recipient], raw) == {}
        items, tickets, events = InboundItem.__table__, Ticket.__table__, TicketEvent.__table__
        with daemon.engine.connect() as conn:
            stored = conn.execute(
                select(items.c.envelope_from, items.c.envelope_to).order_by(items.c.id)
            ).all()
        assert [(row.envelope_from, json.loads(row.envelope_to)) for row in stored] == [
            (sender, [recipient]) for sender, recipient in ENVELOPES
        ], "as sent; the null path is stored as the empty string"
        wait_until(lambda: daemon.ticket_count() == len(ENVELOPES), what="the tickets")
        with daemon.engine.connect() as conn:
            suppressed = (
                conn.execute(
                    select(events.c.detail)
                    .join(tickets, tickets.c.id == events.c.ticket_id)
                    .where(events.c.kind == "ack_suppressed")
                )
                .scalars()
                .all()
            )
        reasons = json.dumps(suppressed, ensure_ascii=False)
        assert len(suppressed) == 1 and "null envelope sender" in reasons, "no reply to the bounce alone"
    finally:
        daemon.stop()
