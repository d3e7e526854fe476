"""The internal reporting chain per level (``[security.levels.N]``): mails to the level's
``notify`` list, and for a level with ``page = true`` a page of the security team whose SMS
reaches its on-call at the fake phone provider; once per level, when the level is first set or
raised; a lowered level tells those told and ends the chain's page."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from intaked.paging.outcomes import attempt_updated
from intaked.paging.steps import run_due
from intaked.security.actions import set_level
from intaked.store.models import page_table
from intaked.twilio.dispatcher import TwilioSender
from intaked.twilio.rate import TokenBucket
from tests.security.conftest import CHIEF, FRIDAY_17, SOC, SOC_LEAD, SOC_ON_CALL, Desk
from tests.support.fake_phone import FakePhoneProvider


def chain_mails(desk: Desk) -> list[tuple[str, str]]:
    return [(m["recipient"], m["payload"]["subject"]) for m in desk.mails("security_chain")]


def test_level_2_mails_its_list_and_pages_nobody(desk: Desk) -> None:
    number = desk.report()
    set_level(desk.engine, desk.settings, number, 2, by="chen", now=FRIDAY_17)
    assert chain_mails(desk) == [
        ("section-chief@example.com", f"[{number}] 資安事件第2級 / Security incident level 2")
    ]
    (mail,) = desk.mails("security_chain")
    assert "第2級 (C)" in mail["payload"]["text"] and "2026-12-04 18:00 CST" in mail["payload"]["text"]
    with desk.engine.connect() as conn:
        assert conn.execute(select(page_table)).first() is None


def test_level_3_mails_a_person_and_a_team_lead_and_team(desk: Desk) -> None:
    number = desk.report()
    set_level(desk.engine, desk.settings, number, 3, by="chen", now=FRIDAY_17)
    assert [to for to, _ in chain_mails(desk)] == ["deputy@example.com", SOC_LEAD, SOC]


def sms_sent(desk: Desk) -> list[tuple[str, str]]:
    """What the outbox's SMS that are due reach at the fake phone provider: (to, body)."""
    provider = FakePhoneProvider()
    sender = TwilioSender(
        desk.engine, desk.settings, provider, TokenBucket(1000.0, 1000.0), on_attempt=attempt_updated
    )
    while sender.dispatch_once("sms"):
        pass
    return [(sms.to, sms.body) for sms in provider.sms]


def pages(desk: Desk) -> list[Any]:
    with desk.engine.connect() as conn:
        return list(conn.execute(select(page_table).order_by(page_table.c.id)).mappings())


def test_raising_to_level_4_pages_the_security_team_s_on_call_once_by_sms(desk: Desk) -> None:
    number = desk.report()
    set_level(desk.engine, desk.settings, number, 2, by="chen", now=FRIDAY_17)
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)  # again: nothing more
    assert [to for to, _ in chain_mails(desk)] == [
        "section-chief@example.com",
        "director@example.com",
        "chief@example.com",
    ]
    assert [e["detail"]["level"] for e in desk.events(number, "security_chain")] == [2, 4]
    (page,) = pages(desk)
    assert page["priority"] == "P1" and page["reason"] == "security incident level 4"
    assert json.loads(page["policy"])["team"] == "security"
    ((to, body),) = sms_sent(desk)
    assert to == SOC_ON_CALL and number in body, "the security team's on-call, not the QRC's"


def test_a_security_team_without_an_on_call_is_paged_through_the_qrc(db_url: str) -> None:
    desk = Desk(db_url, teams={"security": {"email": SOC, "lead_email": SOC_LEAD}})
    try:
        number = desk.report()
        set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)
        (page,) = pages(desk)
        assert json.loads(page["policy"])["team"] == ""
        ((to, body),) = sms_sent(desk)
        assert to == CHIEF and number in body
    finally:
        desk.engine.dispose()


def test_the_team_s_policy_escalates_past_its_on_call(db_url: str) -> None:
    """The team's on-call first, then the later steps of its policy (here: the QRC's 組長)."""
    policy = {
        "repeat": 1,
        "steps": [
            {"targets": [{"oncall": "qrc_duty"}], "channels": ["sms"]},
            {"after": "5m", "targets": [{"person": "chief"}], "channels": ["sms"]},
        ],
    }
    desk = Desk(db_url, paging={"policies": {"P1": policy}})
    try:
        number = desk.report()
        set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)
        (page,) = pages(desk)
        steps = json.loads(page["policy"])["steps"]
        assert [s["targets"] for s in steps] == [[{"oncall": "soc_duty"}], [{"person": "chief"}]]
        assert [to for to, _ in sms_sent(desk)] == [SOC_ON_CALL]
        run_due(desk.engine, desk.settings, now=FRIDAY_17 + dt.timedelta(minutes=6))
        assert [to for to, _ in sms_sent(desk)] == [CHIEF], "nobody answered: the next step"
    finally:
        desk.engine.dispose()


def test_lowering_the_level_tells_those_told_and_cancels_the_chain_s_page(desk: Desk) -> None:
    number = desk.report()
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)
    assert len(sms_sent(desk)) == 1
    set_level(desk.engine, desk.settings, number, 2, by="chen", now=FRIDAY_17)
    set_level(desk.engine, desk.settings, number, 2, by="chen", now=FRIDAY_17)  # again: nothing more
    lowered = desk.mails("security_lowered")
    assert [m["recipient"] for m in lowered] == ["director@example.com", "chief@example.com"]
    assert lowered[0]["payload"]["subject"] == (
        f"[{number}] 資安事件等級調降為第2級 / Security incident lowered to level 2"
    )
    (event,) = desk.events(number, "security_level_lowered")
    assert event["detail"]["from"] == 4 and event["detail"]["to"] == 2 and event["detail"]["page_cancelled"]
    (page,) = pages(desk)
    assert page["state"] == "cancelled"
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)  # raised again
    assert len(pages(desk)) == 1 and len(desk.mails("security_chain")) == 2, "the chain ran already"
