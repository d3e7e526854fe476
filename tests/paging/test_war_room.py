"""The war-room bridge of ``[paging] war_room``: named in every P1/P2 page SMS, offered on the
page call ("press 2": acknowledge and ``<Dial>`` the bridge with its conference code), a meeting
URL carried by the SMS; a bad value is refused naming the key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from intaked.config import ConfigError, Settings, settings_from_mapping
from intaked.paging.outcomes import attempt_updated
from intaked.ports.phone import KEYPRESS_PATH, VOICE_PAGE_PATH
from intaked.sla.context import load_context
from intaked.tickets.lifecycle import triage
from intaked.twilio.routes import PAGING, build_routes
from tests.paging.test_engine import CONFIG, engine, new_ticket, outbox, triage_p1
from tests.paging.test_paging_webhooks import PUBLIC, TOKEN, call_attempt, page, post
from tests.support.webhookd import RunningWebhooks, running_webhooks

__all__ = ["engine"]

BRIDGE = "tel:+886223456789,,1234#"
MEETING = "https://meet.example.com/qrc-war-room"


def with_war_room(war_room: str, **extra: Any) -> Settings:
    return settings_from_mapping(
        CONFIG | extra | {"paging": CONFIG["paging"] | {"war_room": war_room}}, environ={}
    )


def page_sms(engine: Engine) -> str:
    sms = [row for row in outbox(engine, purpose="page") if row["kind"] == "sms"]
    return str(json.loads(sms[0]["payload"])["body"])


def test_the_bridge_is_in_the_page_sms(engine: Engine) -> None:
    new_ticket(engine)
    triage_p1(engine, with_war_room(BRIDGE))
    body = page_sms(engine)
    assert body.startswith("[P1] IT-202611-00042") and body.endswith(" 會議 +886223456789,,1234#")


def test_a_meeting_url_is_in_the_page_sms(engine: Engine) -> None:
    new_ticket(engine)
    triage_p1(engine, with_war_room(MEETING))
    assert page_sms(engine).endswith(f" 會議 {MEETING}")


def test_no_war_room_leaves_the_sms_as_it_was(engine: Engine) -> None:
    new_ticket(engine)
    triage_p1(engine, settings_from_mapping(CONFIG, environ={}))
    assert "會議" not in page_sms(engine)


@pytest.mark.parametrize("bad", ["+886223456789", "tel:0223456789", "tel:+886223456789,,12a4", "ftp://x"])
def test_a_bad_war_room_names_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"paging\.war_room"):
        with_war_room(bad)


def hooks_for(war_room: str, engine: Engine) -> Iterator[RunningWebhooks]:
    settings = with_war_room(
        war_room,
        twilio={
            "account_sid": "AC" + "0123456789abcdef" * 2,
            "auth_token": TOKEN,
            "from_number": "+886212345678",
        },
        webhooks={"listen": "127.0.0.1:0", "public_url": PUBLIC},
    )
    new_ticket(engine)
    triage(engine, load_context(engine, settings), "IT-202611-00042", priority="P1", by="fs")
    with running_webhooks(settings, engine, build_routes(settings, attempt_updated, [PAGING])) as running:
        yield running


@pytest.fixture
def bridge_hooks(engine: Engine) -> Iterator[RunningWebhooks]:
    yield from hooks_for(BRIDGE, engine)


@pytest.fixture
def meeting_hooks(engine: Engine) -> Iterator[RunningWebhooks]:
    yield from hooks_for(MEETING, engine)


CALL = [("CallSid", "CA" + "7" * 32), ("CallStatus", "in-progress"), ("AnsweredBy", "human")]


def test_pressing_2_acknowledges_and_dials_the_bridge(bridge_hooks: RunningWebhooks, engine: Engine) -> None:
    attempt = call_attempt(engine)["id"]
    status, twiml = post(bridge_hooks, f"{VOICE_PAGE_PATH}?attempt={attempt}", CALL)
    assert (
        status == 200
        and "確認並加入作戰會議請按 2" in twiml
        and "2 to acknowledge and join the bridge" in twiml
    )
    status, twiml = post(bridge_hooks, f"{KEYPRESS_PATH}?attempt={attempt}", [*CALL, ("Digits", "2")])
    assert status == 200
    assert '<Dial><Number sendDigits="ww1234#">+886223456789</Number></Dial>' in twiml
    p = page(engine)
    assert (p["state"], p["acknowledged_by"], p["ack_channel"]) == ("acknowledged", "chen", "call")


def test_a_meeting_url_is_said_to_be_in_the_sms(meeting_hooks: RunningWebhooks, engine: Engine) -> None:
    attempt = call_attempt(engine)["id"]
    status, twiml = post(meeting_hooks, f"{VOICE_PAGE_PATH}?attempt={attempt}", CALL)
    assert status == 200 and "the war room link was sent by SMS" in twiml and "press 2" not in twiml.lower()
    status, twiml = post(meeting_hooks, f"{KEYPRESS_PATH}?attempt={attempt}", [*CALL, ("Digits", "2")])
    assert "<Dial" not in twiml and page(engine)["state"] == "active"
