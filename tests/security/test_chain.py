"""The internal reporting chain per level (``[security.levels.N]``): mails to the level's
``notify`` list, and for a level with ``page = true`` a page whose SMS reaches the on-call at the
fake phone provider; once per level, when the level is first set or raised."""

from __future__ import annotations

from sqlalchemy import select

from intaked.paging.outcomes import attempt_updated
from intaked.security.actions import set_level
from intaked.store.models import page_table
from intaked.twilio.dispatcher import TwilioSender
from intaked.twilio.rate import TokenBucket
from tests.security.conftest import CHIEF, FRIDAY_17, SOC, SOC_LEAD, Desk
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


def test_raising_to_level_4_pages_the_on_call_once_by_sms(desk: Desk) -> None:
    number = desk.report()
    set_level(desk.engine, desk.settings, number, 2, by="chen", now=FRIDAY_17)
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)  # again: nothing more
    set_level(desk.engine, desk.settings, number, 3, by="chen", now=FRIDAY_17)  # lowered: no chain
    set_level(desk.engine, desk.settings, number, 4, by="chen", now=FRIDAY_17)  # raised again: done already
    assert [to for to, _ in chain_mails(desk)] == [
        "section-chief@example.com",
        "director@example.com",
        "chief@example.com",
    ]
    assert [e["detail"]["level"] for e in desk.events(number, "security_chain")] == [2, 4]
    with desk.engine.connect() as conn:
        (page,) = conn.execute(select(page_table)).mappings().all()
    assert page["priority"] == "P1" and page["reason"] == "security incident level 4"
    provider = FakePhoneProvider()
    sender = TwilioSender(
        desk.engine, desk.settings, provider, TokenBucket(1000.0, 1000.0), on_attempt=attempt_updated
    )
    sender.dispatch_once("sms")
    (sms,) = provider.sms
    assert sms.to == CHIEF and number in sms.body
