"""The Field Service desk is rung first during its calendar's working time; a recorded greeting."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from intaked.config import Settings
from intaked.ports.phone import INCOMING_PATH
from intaked.store.models import call_table, ticket_table
from tests.hotline.conftest import DESK, HOTLINE, MOBILE_UNKNOWN, hotline_settings
from tests.support.incoming_calls import CallerScript
from tests.support.phone import FakePhoneNetwork
from tests.support.webhookd import RunningWebhooks
from tests.twilio.conftest import PUBLIC_URL

GREETING = "https://media.example.com/hotline-greeting.mp3"


def _always(holidays: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "timezone": "Asia/Taipei",
        "working_days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "hours": ["00:00-24:00"],
        "country": "",
        "extra_holidays": holidays or {},
    }


@pytest.fixture(params=["working", "closed"])
def desk_state(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, desk_state: str) -> Settings:
    today = dt.datetime.now(ZoneInfo("Asia/Taipei")).date()
    closed = {str(today + dt.timedelta(days=d)): "closed" for d in (-1, 0, 1)}
    return hotline_settings(
        tmp_path,
        calendars={"default": {}, "desk": _always(closed if desk_state == "closed" else None)},
        hotline={
            "numbers": [HOTLINE],
            "desk_number": DESK,
            "desk_dial_seconds": 15,
            "desk_calendar": "desk",
            "greeting_url": GREETING,
        },
    )


def the_call(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(call_table)).mappings().one()


def the_ticket(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(ticket_table)).mappings().one()


def test_the_desk_answers_during_its_working_time(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, desk_state: str
) -> None:
    call = phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(press="2", desk_answers=True))
    greeting = call.twiml(INCOMING_PATH)
    assert [play.text for play in greeting.iter("Play")] == [GREETING] and not list(greeting.iter("Say"))
    menu = call.twiml("/twilio/voice/menu")
    dial = menu.find("Dial")
    if desk_state == "closed":
        assert dial is None and menu.find("Record") is not None, "outside working time: the voicemail"
        assert the_call(engine)["outcome"] == "missed", "nothing recorded"
        return
    assert dial is not None and dial.get("timeout") == "15"
    assert dial.get("action") == PUBLIC_URL + "/twilio/voice/dial-done"
    assert [n.text for n in dial.iter("Number")] == [DESK]
    assert menu.find("Record") is None
    assert call.twiml("/twilio/voice/dial-done").find("Hangup") is not None
    row = the_call(engine)
    assert row["outcome"] == "answered_by_desk" and row["twilio_status"] == "completed"
    assert the_ticket(engine)["callback_requested"] is False


@pytest.mark.parametrize("desk_state", ["working"])
def test_nobody_at_the_desk_goes_to_the_voicemail(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    call = phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(press="2", voicemail_seconds=11))
    (dial_done,) = call.to("/twilio/voice/dial-done")
    assert dict(dial_done.params)["DialCallStatus"] == "no-answer"
    after = call.twiml("/twilio/voice/dial-done")
    assert after.find("Record") is not None and after.find("Dial") is None
    row = the_call(engine)
    assert row["outcome"] == "voicemail" and row["recording_seconds"] == 11
    assert the_ticket(engine)["callback_requested"] is True
