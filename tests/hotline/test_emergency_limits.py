"""Emergency calls cannot page QRC over and over: a repeat emergency from the same caller, or from
withheld numbers, within ``hotline.emergency_window``, and any emergency once
``hotline.max_unconfirmed_emergency_pages`` are running, join the emergency already being paged.
Their tickets are still filed and linked; QRC gets one short SMS a minute at most instead of new
pages. A person can still page by triaging. Calls come through the real webhook listener from
the fake phone network, and what QRC gets is counted at the fake network after the outbox sent it."""

from __future__ import annotations

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from intaked.config import Settings
from intaked.hotline.calls import CallFacts, record_call, set_menu_choice
from intaked.hotline.emergencies import SUMMARY_PURPOSE
from intaked.paging.outcomes import attempt_updated
from intaked.sla.context import load_context
from intaked.store.models import call_table, outbox_table, page_table, ticket_event_table, ticket_table
from intaked.tickets.lifecycle import triage
from intaked.twilio.client import TwilioClient
from intaked.twilio.dispatcher import TwilioSender
from intaked.twilio.rate import TokenBucket
from tests.hotline.conftest import CHEN, HOTLINE, MOBILE_KNOWN, MOBILE_UNKNOWN, hotline_settings
from tests.support.incoming_calls import CallerScript
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.webhookd import RunningWebhooks

EMERGENCY = CallerScript(press="1", voicemail_seconds=5)
OTHERS = ["+886911000001", "+886911000002", "+886911000003", "+886911000004"]


@pytest.fixture
def settings(tmp_path: Path, twilio_api_url: str) -> Settings:
    return hotline_settings(
        tmp_path,
        twilio_api_url,
        hotline={"repeat_window": "2m", "emergency_window": "15m", "max_unconfirmed_emergency_pages": 2},
        twilio={"timeout_seconds": 5.0},
    )


@pytest.fixture(autouse=True)
def qrc_does_not_answer(phone: FakePhoneNetwork) -> None:
    phone.script(CHEN, Script.NO_ANSWER)


def send_everything(engine: Engine, settings: Settings) -> None:
    """What the outbox holds and is due goes out to the fake phone network."""
    sender = TwilioSender(
        engine,
        settings,
        TwilioClient(settings.twilio),
        TokenBucket(1000.0, 1000.0),
        on_attempt=attempt_updated,
    )
    while sender.dispatch_once("sms") + sender.dispatch_once("call"):
        pass


def to_chen(phone: FakePhoneNetwork, kind: str) -> list[str]:
    return [r.get("Body") or "" for r in phone.creates(kind) if r.get("To") == CHEN]


def rows(engine: Engine, table: Any, *where: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).where(*where).order_by(table.c.id)).mappings())


def events(engine: Engine, ticket_id: int, kind: str) -> list[dict[str, Any]]:
    found = rows(
        engine,
        ticket_event_table,
        ticket_event_table.c.ticket_id == ticket_id,
        ticket_event_table.c.kind == kind,
    )
    return [json.loads(e["detail"]) for e in found]


def earlier(engine: Engine, minutes: int) -> None:
    """Every call so far happened ``minutes`` ago (past the repeat window, within the emergency one)."""
    with engine.begin() as conn:
        for call_id, started_at in conn.execute(select(call_table.c.id, call_table.c.started_at)).all():
            conn.execute(
                update(call_table)
                .where(call_table.c.id == call_id)
                .values(started_at=started_at - dt.timedelta(minutes=minutes))
            )


def test_a_second_emergency_from_the_same_caller_joins_the_page(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    phone.place_call(MOBILE_KNOWN, HOTLINE, EMERGENCY)
    earlier(engine, 5)
    second = phone.place_call(MOBILE_KNOWN, HOTLINE, EMERGENCY)
    send_everything(engine, settings)

    first_ticket, second_ticket = rows(engine, ticket_table)
    (page,) = rows(engine, page_table)
    assert page["ticket_id"] == first_ticket["id"], "one page, for the first call"
    assert second_ticket["suggested_priority"] == "P1" and second_ticket["suggestion_trusted"] is True
    (joined,) = events(engine, second_ticket["id"], "emergency_joined")
    assert joined["ticket"] == first_ticket["number"] and joined["why"] == "same_caller"
    (linked,) = events(engine, first_ticket["id"], "emergency_call_joined")
    assert linked["ticket"] == second_ticket["number"] and linked["call_sid"] == second.sid

    assert len(to_chen(phone, "Calls")) == 1, "QRC's phone rang once"
    page_sms, more = to_chen(phone, "Messages")
    assert first_ticket["number"] in page_sms
    assert "1 more emergency call, latest from " + MOBILE_KNOWN in more
    assert first_ticket["number"] in more and second_ticket["number"] in more
    assert "緊急應變小組已收到通知" in " ".join(
        say.text or "" for say in second.twiml("/twilio/voice/menu").iter("Say")
    ), "the caller hears that QRC knows"


@pytest.mark.parametrize("withheld", ["anonymous", "", "restricted"])
def test_emergencies_from_withheld_numbers_join_one_page_and_a_flood_yields_one_sms(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings, withheld: str
) -> None:
    for _ in range(5):
        phone.place_call(withheld, HOTLINE, EMERGENCY)
    send_everything(engine, settings)

    tickets = rows(engine, ticket_table)
    assert len(tickets) == 5, "every call is filed: nothing lost"
    (page,) = rows(engine, page_table)
    assert page["ticket_id"] == tickets[0]["id"]
    for ticket in tickets[1:]:
        (joined,) = events(engine, ticket["id"], "emergency_joined")
        assert joined["ticket"] == tickets[0]["number"] and joined["why"] == "withheld_caller"
    assert len(events(engine, tickets[0]["id"], "emergency_call_joined")) == 4

    assert len(to_chen(phone, "Calls")) == 1
    page_sms, more = to_chen(phone, "Messages")
    assert tickets[0]["number"] in page_sms
    assert "4 more emergency calls, latest from a withheld number" in more, "one SMS counting them all"
    assert tickets[4]["number"] in more


def test_the_more_calls_sms_leaves_at_most_once_a_minute(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    phone.place_call("anonymous", HOTLINE, EMERGENCY)
    phone.place_call("anonymous", HOTLINE, EMERGENCY)
    send_everything(engine, settings)
    assert len(to_chen(phone, "Messages")) == 2, "the page and '1 more emergency call'"

    phone.place_call("anonymous", HOTLINE, EMERGENCY)
    phone.place_call("anonymous", HOTLINE, EMERGENCY)
    send_everything(engine, settings)
    assert len(to_chen(phone, "Messages")) == 2, "a minute has not passed since the last one"
    first, waiting = rows(engine, outbox_table, outbox_table.c.purpose == SUMMARY_PURPOSE)
    assert first["state"] == "sent" and waiting["state"] == "pending"
    assert waiting["next_attempt_at"] == first["sent_at"] + dt.timedelta(minutes=1)

    with engine.begin() as conn:  # the minute has passed
        conn.execute(
            update(outbox_table)
            .where(outbox_table.c.id == waiting["id"])
            .values(next_attempt_at=first["sent_at"])
        )
    send_everything(engine, settings)
    sms = to_chen(phone, "Messages")
    assert len(sms) == 3 and "3 more emergency calls" in sms[-1], "one SMS for both, the count current"


def test_past_the_cap_emergencies_from_other_callers_page_no_one_more(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    for number in OTHERS:
        phone.place_call(number, HOTLINE, EMERGENCY)
    send_everything(engine, settings)

    tickets = rows(engine, ticket_table)
    assert len(tickets) == 4
    pages = rows(engine, page_table)
    assert [p["ticket_id"] for p in pages] == [tickets[0]["id"], tickets[1]["id"]], "the cap is 2"
    for ticket in tickets[2:]:
        (joined,) = events(engine, ticket["id"], "emergency_joined")
        assert joined["why"] == "cap" and joined["ticket"] == tickets[1]["number"]
    assert len(to_chen(phone, "Calls")) == 2, "two pages, two calls"
    assert len([b for b in to_chen(phone, "Messages") if "more emergency" in b]) == 1

    # A person can still page any of them by setting the priority.
    triage(engine, load_context(engine, settings), tickets[3]["number"], priority="P1", by="Chen")
    send_everything(engine, settings)
    paged = {p["ticket_id"]: p for p in rows(engine, page_table)}
    assert tickets[3]["id"] in paged and paged[tickets[3]["id"]]["unconfirmed"] is False
    assert len(to_chen(phone, "Calls")) == 3


def test_once_the_window_has_passed_the_same_caller_pages_again(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    phone.place_call(MOBILE_UNKNOWN, HOTLINE, EMERGENCY)
    earlier(engine, 20)
    phone.place_call(MOBILE_UNKNOWN, HOTLINE, EMERGENCY)
    send_everything(engine, settings)
    assert len(rows(engine, page_table)) == 2
    assert rows(engine, outbox_table, outbox_table.c.purpose == SUMMARY_PURPOSE) == []


def press_1_racing(engine: Engine, settings: Settings, callers: list[str]) -> None:
    """Calls from ``callers`` are filed, then all press 1 at the same moment, each on its own
    database thread."""
    now = dt.datetime.now(dt.UTC)
    sids = [f"CA{n:032x}" for n in range(len(callers))]
    for sid, caller in zip(sids, callers, strict=True):
        with engine.begin() as conn:
            record_call(conn, settings, CallFacts(sid, caller, HOTLINE, None, now, "ringing"), now)
    barrier = threading.Barrier(len(sids))

    def press(sid: str) -> None:
        barrier.wait()
        with engine.begin() as conn:
            set_menu_choice(conn, settings, sid, "1", now)

    with ThreadPoolExecutor(len(sids)) as pool:
        list(pool.map(press, sids))


def test_withheld_emergencies_racing_start_one_page(engine: Engine, settings: Settings) -> None:
    press_1_racing(engine, settings, ["anonymous"] * 6)
    assert len(rows(engine, ticket_table)) == 6
    assert len(rows(engine, page_table)) == 1
    joined = rows(engine, ticket_event_table, ticket_event_table.c.kind == "emergency_joined")
    assert len(joined) == 5


def test_emergencies_from_many_callers_racing_stop_at_the_cap(engine: Engine, settings: Settings) -> None:
    press_1_racing(engine, settings, [f"+8869110000{n:02d}" for n in range(6)])
    assert len(rows(engine, page_table)) == 2, "max_unconfirmed_emergency_pages = 2"
    joined = rows(engine, ticket_event_table, ticket_event_table.c.kind == "emergency_joined")
    assert len(joined) == 4
