"""A security incident from any channel tells the security team, once per ticket: a mail that a
routing rule files as ``security_incident``, and a call to the hotline's menu choice 3 (whose
``hotline.security_notify`` mail goes on as before)."""

from __future__ import annotations

import datetime as dt

from intaked.hotline.calls import CallFacts, record_call, set_menu_choice
from intaked.outbound.dispatcher import dispatch_once
from intaked.security.tracker import check_security
from tests.security.conftest import FRIDAY_17, SOC, SOC_LEAD, Desk
from tests.support.fake_relay import FakeRelay

HOTLINE = "+886225551234"
CALLER = "+886223456789"


def test_a_mailed_report_routed_as_a_security_incident_tells_the_team_once(desk: Desk) -> None:
    number = desk.report()
    desk.report("印表機卡紙")  # not a security incident: no notice
    assert desk.ticket(number)["category"] == "security_incident"
    (notice,) = desk.mails("security_team")
    assert notice["recipient"] == SOC
    assert (
        notice["payload"]["subject"] == f"[{number}] 資通安全事件 / Security incident: 資安事件：網站遭篡改"
    )
    text = notice["payload"]["text"]
    assert "知悉後 1h 內須通報主管機關" in text and f"intaked security level {number}" in text
    assert len(desk.events(number, "security_team_notified")) == 1


def test_a_hotline_menu_3_call_tells_the_team_once_and_the_hotline_list_as_before(db_url: str) -> None:
    desk = Desk(db_url, hotline={"numbers": [HOTLINE], "security_notify": "hotline-soc@example.com"})
    now = dt.datetime.now(dt.UTC)
    sid = "CA" + "3" * 32
    with desk.engine.begin() as conn:
        filed = record_call(
            conn, desk.settings, CallFacts(sid, CALLER, HOTLINE, None, now, "in-progress"), now
        )
        set_menu_choice(conn, desk.settings, sid, "3", now)
    with desk.engine.begin() as conn:
        set_menu_choice(conn, desk.settings, sid, "3", now)  # Twilio retries the webhook
    ticket = desk.ticket(filed.ticket_number)
    assert ticket["category"] == "security_incident"
    (notice,) = desk.mails("security_team")
    assert notice["recipient"] == SOC and filed.ticket_number in notice["payload"]["subject"]
    (hotline,) = desk.mails("hotline_security")
    assert hotline["recipient"] == "hotline-soc@example.com"
    desk.engine.dispose()


def test_the_hotline_list_being_the_team_mailbox_is_mailed_once(db_url: str) -> None:
    desk = Desk(db_url, hotline={"numbers": [HOTLINE], "security_notify": SOC})
    now = dt.datetime.now(dt.UTC)
    sid = "CA" + "4" * 32
    with desk.engine.begin() as conn:
        record_call(conn, desk.settings, CallFacts(sid, CALLER, HOTLINE, None, now, "in-progress"), now)
        set_menu_choice(conn, desk.settings, sid, "3", now)
    assert desk.mails("security_team") == []
    assert [m["recipient"] for m in desk.mails("hotline_security")] == [SOC]
    desk.engine.dispose()


def test_the_team_receives_the_notice_and_a_breach_as_mail(desk: Desk) -> None:
    number = desk.report()
    check_security(desk.engine, desk.settings, FRIDAY_17 + dt.timedelta(hours=2))
    relay = FakeRelay()
    while dispatch_once(desk.engine, desk.settings, relay):
        pass
    got = {(m.rcpt_tos[0], str(m.message["Subject"])) for m in relay.handed}
    subjects = {subject for to, subject in got if to == SOC}
    assert any(s.startswith(f"[{number}] 資通安全事件") for s in subjects)
    assert any("通報主管機關已逾期" in s for s in subjects), subjects
    assert any("通報主管機關即將逾期" in s for s in subjects), "the warning came in the same pass"
    assert (SOC_LEAD, next(s for s in subjects if "已逾期" in s)) in got
