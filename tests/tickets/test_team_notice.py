"""The new-ticket notice to the routed team (``[teams.<name>] notify_new``): queued with the
ticket, once; the number, requester, subject, first lines, suggested priority and channel; over
real SMTP from the daemon; none for spam, none for a team that did not ask."""

from __future__ import annotations

import datetime as dt
import json
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intaked.hotline.calls import CallFacts, record_call
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import outbox_table, ticket_table
from intaked.tickets.team_notice import first_lines
from tests.hotline.conftest import HOTLINE, MOBILE_KNOWN, hotline_settings
from tests.sla.test_tracker import Desk
from tests.support.daemon import DaemonThread, make_settings
from tests.support.smtpsink import Received, SmtpSink
from tests.support.waiting import wait_until

HELPDESK = "helpdesk@example.com"
TEAMS = {
    "network": {"email": "Net@Example.com", "notify_new": True},
    "erp": {"email": "erp@example.com"},  # no notice
}
RULES = {
    "rules": [
        {"name": "vpn", "keywords": ["VPN"], "team": "network", "suggested_priority": "P2"},
        {"name": "erp", "keywords": ["ERP"], "team": "erp"},
    ]
}
BODY = "VPN 連不上，從早上開始。\r\n\r\n錯誤代碼 809。\r\n" + "".join(f"第 {n} 行\r\n" for n in range(3, 20))


def mail(
    subject: str, mid: str, *, extra: str = "", body: str = BODY, sender: str = "lin@example.com"
) -> bytes:
    return (
        f"From: 林小姐 <{sender}>\r\nTo: {HELPDESK}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


def numbers(engine: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(ticket_table.c.subject, ticket_table.c.number, ticket_table.c.status))
        return {row.subject: row for row in rows}


def notices(engine: Any) -> list[Any]:
    with engine.connect() as conn:
        query = (
            select(outbox_table)
            .where(outbox_table.c.purpose == "team_new_ticket")
            .order_by(outbox_table.c.id)
        )
        return list(conn.execute(query).mappings())


def test_first_lines_keeps_the_start_of_the_report() -> None:
    assert first_lines("a\r\n\r\n  \nb\nc", lines=2) == "a\nb\n…"
    assert first_lines("short") == "short"
    assert first_lines(None) == ""
    assert first_lines("x" * 50, chars=10) == "x" * 10 + "\n…"


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    desk = Desk(db_url, teams=TEAMS, routing=RULES)
    yield desk
    desk.engine.dispose()


def file_mail(desk: Desk, raw: bytes) -> None:
    insert_items(desk.engine, [RawItem("smtp", raw, envelope_from="lin@example.com")])
    while process_once(desk.engine, desk.settings):
        pass


def test_queued_with_the_ticket_once_and_only_for_the_team_that_asked(desk: Desk) -> None:
    file_mail(desk, mail("VPN 斷線", "vpn-1@example.com"))
    file_mail(desk, mail("VPN 斷線", "vpn-1@example.com"))  # the same mail again: a duplicate
    file_mail(desk, mail("ERP 無法登入", "erp-1@example.com", body="帳號被鎖住。\r\n"))
    file_mail(desk, mail("VPN 又斷線", "vpn-2@example.com", extra="X-Spam-Flag: YES\r\n"))
    tickets = numbers(desk.engine)
    assert tickets["VPN 又斷線"].status == "spam"
    (notice,) = notices(desk.engine)
    assert notice["recipient"] == "net@example.com"
    payload = json.loads(notice["payload"])
    number = tickets["VPN 斷線"].number
    assert payload["subject"] == f"[{number}] 新案件 / New ticket: VPN 斷線"
    assert payload["auto_submitted"] == "auto-generated"
    text = payload["text"]
    assert text.index("報案人：林小姐 lin@example.com") < text.index("Requester: 林小姐 lin@example.com")
    assert "建議優先等級：P2" in text and "Suggested priority: P2" in text
    assert "管道：電子郵件" in text and "Channel: e-mail" in text
    assert "VPN 連不上，從早上開始。\n錯誤代碼 809。\n第 3 行" in text
    assert "第 8 行\n…" in text and "第 9 行" not in text


def received_notices(sink: SmtpSink) -> list[Received]:
    return [m for m in sink.messages() if m.rcpt_tos == ["net@example.com"]]


def test_the_team_gets_the_notice_by_mail_and_none_for_spam(db_url: str, sink: SmtpSink) -> None:
    outbound = {"host": "127.0.0.1", "port": sink.port, "from_address": HELPDESK}
    settings = make_settings(
        db_url,
        outbound_mail=outbound,
        teams=TEAMS,
        routing=RULES,
        outbox={"retry_base_seconds": 0.2, "poll_seconds": 0.2},
    )
    daemon = DaemonThread(settings).start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
            client.sendmail(
                "lin@example.com",
                [HELPDESK],
                mail("VPN 又斷線", "spam@example.com", extra="X-Spam-Flag: YES\r\n"),
            )
            client.sendmail("lin@example.com", [HELPDESK], mail("VPN 斷線", "vpn@example.com"))
        wait_until(lambda: received_notices(sink), timeout=90, what="the team's notice at the sink")
        tickets = numbers(daemon.engine)
        assert tickets["VPN 又斷線"].status == "spam"
        (received,) = received_notices(sink)
        assert len(notices(daemon.engine)) == 1
    finally:
        daemon.stop()
    msg = received.message
    number = tickets["VPN 斷線"].number
    assert msg["Subject"] == f"[{number}] 新案件 / New ticket: VPN 斷線"
    assert msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_content()
    assert number in body and "VPN 連不上，從早上開始。\n錯誤代碼 809。" in body


def test_a_phone_ticket_routed_when_the_call_comes_in(db_url: str, tmp_path: Path) -> None:
    settings = hotline_settings(
        tmp_path,
        teams={"network": {"email": "net@example.com", "notify_new": True}},
        routing={"rules": [{"name": "hotline", "channel": ["phone"], "team": "network"}]},
    )
    engine = make_engine(db_url)
    upgrade(engine)
    try:
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            facts = CallFacts("CA" + "1" * 32, MOBILE_KNOWN, HOTLINE, None, now, "ringing")
            filed = record_call(conn, settings, facts, now)
        (notice,) = notices(engine)
    finally:
        engine.dispose()
    payload = json.loads(notice["payload"])
    assert notice["ticket_id"] == filed.ticket_id and filed.ticket_number in payload["subject"]
    assert "管道：電話" in payload["text"] and "Channel: phone" in payload["text"]
    assert f"報案人：王小明 wang@example.com {MOBILE_KNOWN}" in payload["text"]
