"""Hotline calls through the real webhook listener, driven by the fake phone network the way
Twilio drives a call: every menu path, hang-ups, voicemail, repeat calls, replays, forged
requests, and the acknowledgement to the caller."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from structlog.testing import capture_logs

from intaked.config import Settings
from intaked.hotline.calls import CallFacts, record_call
from intaked.hotline.progress import call_status, voicemail_left
from intaked.ports.phone import INCOMING_PATH
from intaked.store.models import (
    call_table,
    message_table,
    outbox_table,
    page_attempt_table,
    page_table,
    ticket_event_table,
    ticket_table,
)
from tests.hotline.conftest import (
    CHEN,
    HOTLINE,
    LANDLINE_KNOWN,
    LANDLINE_UNKNOWN,
    MOBILE_KNOWN,
    MOBILE_UNKNOWN,
    SECURITY_LIST,
)
from tests.support.incoming_calls import CallerScript
from tests.support.phone import FakePhoneNetwork, signed_post
from tests.support.webhookd import RunningWebhooks
from tests.twilio.conftest import AUTH_TOKEN, PUBLIC_URL

MENU_URL = PUBLIC_URL + "/twilio/voice/menu"


def rows(engine: Engine, table: Any, *where: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(table).where(*where).order_by(table.c[next(iter(table.primary_key)).name])
            ).mappings()
        )


def only_ticket(engine: Engine) -> Any:
    (ticket,) = rows(engine, ticket_table)
    return ticket


def event_kinds(engine: Engine, ticket_id: int) -> list[str]:
    return [e["kind"] for e in rows(engine, ticket_event_table, ticket_event_table.c.ticket_id == ticket_id)]


def says(element: Any) -> list[str]:
    return [say.text or "" for say in element.iter("Say")]


def test_menu_2_voicemail_files_a_ticket_flagged_for_call_back_and_acknowledged_by_sms(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    call = phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(press="2", voicemail_seconds=15))

    greeting = call.twiml(INCOMING_PATH)
    gather = greeting.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1" and gather.get("action") == MENU_URL
    zh, en = says(gather)
    assert "請按 1" in zh and "press 3" in en
    ticket = only_ticket(engine)
    assert ticket["channel"] == "phone" and ticket["status"] == "new"
    assert ticket["requester_phone"] == MOBILE_UNKNOWN and ticket["requester_email"] is None
    assert ticket["triage_due_at"] is not None, "born with its triage deadline like mail tickets"
    assert ticket["callback_requested"] is True
    assert ticket["subject"].startswith(f"語音留言，請回撥 {MOBILE_UNKNOWN}（其他 IT 問題）")
    assert ticket["suggested_priority"] is None and ticket["suggestion_trusted"] is False

    menu = call.twiml("/twilio/voice/menu")
    spoken = " ".join(says(menu))
    assert "I T, 2 0" in spoken and " ".join(ticket["number"].split("-")[2]) in spoken
    record = menu.find("Record")
    assert record is not None
    assert record.get("maxLength") == "120" and record.get("finishOnKey") == "#"
    assert record.get("action") == PUBLIC_URL + "/twilio/voice/recorded"
    assert record.get("recordingStatusCallback") == PUBLIC_URL + "/twilio/voice/recording"
    assert record.get("recordingStatusCallbackEvent") == "completed absent failed"
    assert record.get("transcribeCallback") == PUBLIC_URL + "/twilio/voice/transcription"
    assert menu.find("Dial") is None, "no desk number configured"
    assert call.twiml("/twilio/voice/recorded").find("Hangup") is not None

    (row,) = rows(engine, call_table)
    assert row["call_sid"] == call.sid and row["ticket_id"] == ticket["id"]
    assert row["menu_choice"] == "2" and row["outcome"] == "voicemail" and row["recording_seconds"] == 15
    assert row["twilio_status"] == "completed" and row["duration_seconds"] is not None
    assert row["ended_at"] is not None and row["source"] == "webhook"
    (message,) = rows(engine, message_table)
    assert message["id"] == row["message_id"] and message["header_message_id"] == f"call:{call.sid}"
    assert (
        message["channel"] == "phone" and message["direction"] == "in" and message["sender"] == MOBILE_UNKNOWN
    )
    assert "已留言，請回撥" in message["body_text"]
    (sms,) = rows(engine, outbox_table)
    assert sms["kind"] == "sms" and sms["purpose"] == "hotline_ack" and sms["recipient"] == MOBILE_UNKNOWN
    assert json.loads(sms["payload"]) == {"to": MOBILE_UNKNOWN, "body": sms_body(ticket["number"])}
    kinds = event_kinds(engine, ticket["id"])
    assert kinds[:2] == ["created", "ack_queued"] and "menu_choice" in kinds and "voicemail_left" in kinds
    assert "missed_call" not in kinds


def test_the_caller_describes_the_problem_and_it_becomes_the_transcript(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    said = "三樓印表機卡紙，整個部門都不能列印"
    call = phone.place_call(
        MOBILE_UNKNOWN, HOTLINE, CallerScript(press="2", speech=said, voicemail_seconds=9)
    )
    gather = call.twiml("/twilio/voice/menu").find("Gather")
    assert gather is not None and gather.get("input") == "speech" and gather.get("language") == "zh-TW"
    assert gather.get("action") == PUBLIC_URL + "/twilio/voice/speech"
    after = call.twiml("/twilio/voice/speech")
    assert after.find("Record") is not None, "the voicemail follows the description"
    (row,) = rows(engine, call_table)
    assert (row["transcript"], row["transcript_source"], row["transcript_confidence"]) == (
        said,
        "speech",
        0.87,
    )
    assert row["outcome"] == "voicemail" and row["recording_seconds"] == 9
    (message,) = rows(engine, message_table)
    assert f"來電者說 / Caller said: {said}" in message["body_text"]
    assert "transcript_added" in event_kinds(engine, only_ticket(engine)["id"])


def test_a_caller_who_says_nothing_goes_straight_to_the_voicemail(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    call = phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(press="2", voicemail_seconds=5))
    assert call.to("/twilio/voice/speech") == []
    (row,) = rows(engine, call_table)
    assert row["transcript"] is None and row["outcome"] == "voicemail"


def sms_body(number: str) -> str:
    return f"IT 服務台已收到您的來電，案件編號 {number}。Your IT ticket: {number}"


def test_no_key_at_the_menu_counts_as_2(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    call = phone.place_call(LANDLINE_UNKNOWN, HOTLINE, CallerScript(press=None, voicemail_seconds=5))
    (menu_request,) = call.to("/twilio/voice/menu")
    assert dict(menu_request.params).get("Digits") is None
    (row,) = rows(engine, call_table)
    assert row["menu_choice"] == "2" and row["outcome"] == "voicemail"
    assert rows(engine, outbox_table) == [], "a landline unknown to the directory gets no acknowledgement"
    assert "ack_suppressed" in event_kinds(engine, row["ticket_id"])


def test_menu_1_is_a_trusted_p1_that_pages_qrc_at_once(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    call = phone.place_call(MOBILE_KNOWN, HOTLINE, CallerScript(press="1", voicemail_seconds=20))
    ticket = only_ticket(engine)
    assert ticket["suggested_priority"] == "P1" and ticket["suggestion_trusted"] is True
    assert ticket["suggested_by"] == "hotline:emergency" and ticket["priority"] is None
    assert ticket["requester_name"] == "王小明" and ticket["requester_department"] == "製造部"
    (page,) = rows(engine, page_table)
    assert page["ticket_id"] == ticket["id"] and page["unconfirmed"] is True and page["state"] == "active"
    attempts = rows(engine, page_attempt_table)
    assert {(a["channel"], a["address"]) for a in attempts} == {("sms", CHEN), ("call", CHEN)}
    outbox = {(r["kind"], r["purpose"], r["recipient"]) for r in rows(engine, outbox_table)}
    assert ("sms", "page", CHEN) in outbox and ("call", "page", CHEN) in outbox
    assert ("sms", "hotline_ack", MOBILE_KNOWN) in outbox and ("mail", "ack", "wang@example.com") in outbox
    spoken = " ".join(says(call.twiml("/twilio/voice/menu")))
    assert "緊急應變小組已收到通知" in spoken and "paged" in spoken
    assert "page_started" in event_kinds(engine, ticket["id"])


def test_menu_3_is_a_security_incident_for_the_security_team_and_its_list_is_told(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    phone.place_call(LANDLINE_KNOWN, HOTLINE, CallerScript(press="3", voicemail_seconds=30))
    ticket = only_ticket(engine)
    assert ticket["category"] == "security_incident" and ticket["team"] == "security"
    assert ticket["suggestion_trusted"] is False and rows(engine, page_table) == []
    mails = {r["purpose"]: r for r in rows(engine, outbox_table) if r["kind"] == "mail"}
    notice = json.loads(mails["hotline_security"]["payload"])
    assert mails["hotline_security"]["recipient"] == SECURITY_LIST
    assert ticket["number"] in notice["subject"] and LANDLINE_KNOWN in notice["text"]
    assert mails["ack"]["recipient"] == "lin@example.com", "the directory knows the caller's address"
    assert not [r for r in rows(engine, outbox_table) if r["kind"] == "sms"], "a landline gets no SMS"


@pytest.mark.parametrize(
    "script",
    [
        CallerScript(hang_up="before_menu"),
        CallerScript(press="1", hang_up="during_menu"),
        CallerScript(press="2", hang_up="during_recording", voicemail_seconds=0),
        CallerScript(press="2", voicemail_seconds=0),  # silence at the beep: the recording is absent
    ],
    ids=["before-menu", "during-menu", "during-recording", "silent"],
)
def test_a_caller_who_hangs_up_leaves_a_missed_call_ticket_flagged_for_call_back(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, script: CallerScript
) -> None:
    call = phone.place_call(MOBILE_UNKNOWN, HOTLINE, script)
    ticket = only_ticket(engine)
    assert ticket["callback_requested"] is True
    assert ticket["subject"].startswith(f"未接來電，請回撥 {MOBILE_UNKNOWN}")
    assert f"Missed call from {MOBILE_UNKNOWN}, call back" in ticket["subject"]
    (row,) = rows(engine, call_table)
    assert row["outcome"] == "missed" and row["twilio_status"] == "completed" and row["ended_at"] is not None
    (message,) = rows(engine, message_table)
    assert f"missed call from {MOBILE_UNKNOWN}, call back" in message["body_text"]
    assert event_kinds(engine, ticket["id"]).count("missed_call") == 1
    assert call.to("/twilio/status/hotline")[0].status == 200
    assert len(rows(engine, outbox_table, outbox_table.c.purpose == "hotline_ack")) == 1, "acknowledged once"


def test_a_repeat_call_within_the_window_joins_the_open_ticket(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    first = phone.place_call(MOBILE_KNOWN, HOTLINE, CallerScript(hang_up="before_menu"))
    second = phone.place_call(MOBILE_KNOWN, HOTLINE, CallerScript(press="2", voicemail_seconds=9))
    ticket = only_ticket(engine)
    calls = rows(engine, call_table)
    assert [c["call_sid"] for c in calls] == [first.sid, second.sid]
    assert {c["ticket_id"] for c in calls} == {ticket["id"]}
    assert [c["outcome"] for c in calls] == ["missed", "voicemail"]
    assert len(rows(engine, message_table)) == 2
    kinds = event_kinds(engine, ticket["id"])
    assert kinds.count("created") == 1 and kinds.count("call_added") == 1
    acks = [(r["kind"], r["recipient"]) for r in rows(engine, outbox_table)]
    assert sorted(acks) == [("mail", "wang@example.com"), ("sms", MOBILE_KNOWN)], "one of each, not two"
    spoken = " ".join(says(second.twiml("/twilio/voice/menu")))
    assert "已加入案件" in spoken and ticket["number"].split("-")[0] == "IT"
    assert ticket["subject"].startswith("未接來電"), "the first call's subject stays; the flag is set"


def test_a_call_after_the_ticket_closed_or_after_the_window_files_a_new_ticket(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(hang_up="before_menu"))
    with engine.begin() as conn:
        conn.execute(update(ticket_table).values(status="closed"))
    phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(hang_up="before_menu"))
    assert len(rows(engine, ticket_table)) == 2
    (second_ticket,) = rows(engine, ticket_table, ticket_table.c.status == "new")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=31)
    with engine.begin() as conn:
        filed = record_call(
            conn, settings, CallFacts("CA" + "7" * 32, MOBILE_UNKNOWN, HOTLINE, None, later, "ringing"), later
        )
    assert filed.created and not filed.joined and filed.ticket_id != second_ticket["id"]
    within = later + dt.timedelta(minutes=29)
    with engine.begin() as conn:
        again = record_call(
            conn,
            settings,
            CallFacts("CA" + "8" * 32, MOBILE_UNKNOWN, HOTLINE, None, within, "ringing"),
            within,
        )
    assert again.joined and again.ticket_id == filed.ticket_id
    sms = rows(engine, outbox_table, outbox_table.c.kind == "sms")
    assert len(sms) == 3, "one acknowledgement per new ticket, none for the joined call"


def test_a_call_filing_a_ticket_and_a_repeat_call_are_logged_as_what_they_did(
    engine: Engine, settings: Settings
) -> None:
    now = dt.datetime.now(dt.UTC)
    sids = ["CA" + "c" * 32, "CA" + "d" * 32]
    with capture_logs() as lines:
        for n, sid in enumerate(sids):
            at = now + dt.timedelta(minutes=n)
            with engine.begin() as conn:
                record_call(conn, settings, CallFacts(sid, MOBILE_UNKNOWN, HOTLINE, None, at, "ringing"), at)
    number = only_ticket(engine)["number"]
    logged = [
        (line["event"], line["ticket"], line["call_sid"], line["channel"])
        for line in lines
        if "ticket" in line
    ]
    assert logged == [
        ("ticket_created", number, sids[0], "phone"),
        ("message_added", number, sids[1], "phone"),
    ]


def test_a_missed_call_and_a_voicemail_are_logged_with_the_ticket_number(
    engine: Engine, settings: Settings
) -> None:
    now = dt.datetime.now(dt.UTC)
    missed, recorded = "CA" + "e" * 32, "CA" + "f" * 32
    with capture_logs() as lines:
        for n, sid in enumerate((missed, recorded)):
            at = now + dt.timedelta(hours=n)  # apart: the second call files a ticket of its own
            with engine.begin() as conn:
                record_call(
                    conn, settings, CallFacts(sid, f"+88691200000{n}", HOTLINE, None, at, "ringing"), at
                )
        with engine.begin() as conn:
            call_status(conn, settings, missed, "no-answer", 0, False, now)
            voicemail_left(conn, settings, recorded, 12, now)
    with engine.connect() as conn:
        numbers = dict(
            conn.execute(
                select(call_table.c.call_sid, ticket_table.c.number).join(
                    ticket_table, ticket_table.c.id == call_table.c.ticket_id
                )
            ).all()
        )
    logged = {line["event"]: (line.get("ticket"), line.get("call_sid")) for line in lines}
    assert logged["hotline_call_missed"] == (numbers[missed], missed)
    assert logged["hotline_voicemail_left"] == (numbers[recorded], recorded)
    assert numbers[missed] != numbers[recorded]


def test_the_same_callsid_twice_files_one_ticket(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    first = phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(press="1", voicemail_seconds=8))
    phone.place_call(
        MOBILE_UNKNOWN, HOTLINE, CallerScript(press="3", voicemail_seconds=8), call_sid=first.sid
    )
    ticket = only_ticket(engine)
    (row,) = rows(engine, call_table)
    assert row["menu_choice"] == "1", "the first choice counts"
    assert len(rows(engine, message_table)) == 1 and len(rows(engine, page_table)) == 1
    assert len(rows(engine, outbox_table, outbox_table.c.purpose == "hotline_ack")) == 1
    kinds = event_kinds(engine, ticket["id"])
    assert kinds.count("created") == 1 and kinds.count("voicemail_left") == 1
    assert ticket["category"] != "security_incident"


def test_a_forged_signature_is_refused_and_files_nothing(hotline: RunningWebhooks, engine: Engine) -> None:
    params = [
        ("CallSid", "CA" + "9" * 32),
        ("AccountSid", "AC" + "0" * 32),
        ("From", MOBILE_UNKNOWN),
        ("To", HOTLINE),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
    ]
    status, _ = signed_post(hotline.base_url, PUBLIC_URL, INCOMING_PATH, params, "not-the-token")
    assert status == 403
    status, _ = signed_post(
        hotline.base_url, PUBLIC_URL, "/twilio/status/hotline", [*params, ("CallStatus", "completed")], "x"
    )
    assert status == 403
    assert rows(engine, ticket_table) == [] and rows(engine, call_table) == []
    status, body = signed_post(hotline.base_url, PUBLIC_URL, INCOMING_PATH, params, AUTH_TOKEN)
    assert status == 200 and "<Gather" in body and len(rows(engine, ticket_table)) == 1


def test_a_call_to_another_number_is_refused_politely(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork
) -> None:
    call = phone.place_call(MOBILE_UNKNOWN, "+886200000000", CallerScript())
    answer = call.twiml(INCOMING_PATH)
    assert answer.find("Hangup") is not None and answer.find("Gather") is None
    assert "不是 IT 服務台專線" in " ".join(says(answer))
    assert rows(engine, ticket_table) == []


def test_a_repeat_call_never_overrides_a_priority_a_person_set(engine: Engine, settings: Settings) -> None:
    from intaked.hotline.calls import set_menu_choice

    now = dt.datetime.now(dt.UTC)
    first, second = "CA" + "a" * 32, "CA" + "b" * 32
    with engine.begin() as conn:
        filed = record_call(
            conn, settings, CallFacts(first, MOBILE_UNKNOWN, HOTLINE, None, now, "ringing"), now
        )
        set_menu_choice(conn, settings, first, "2", now)
        conn.execute(update(ticket_table).values(priority="P3", triaged_by="chen"))
    later = now + dt.timedelta(minutes=5)
    with engine.begin() as conn:
        again = record_call(
            conn, settings, CallFacts(second, MOBILE_UNKNOWN, HOTLINE, None, later, "ringing"), later
        )
        outcome = set_menu_choice(conn, settings, second, "1", later)
    assert again.joined and again.ticket_id == filed.ticket_id and outcome.joined and not outcome.paged
    ticket = only_ticket(engine)
    assert ticket["priority"] == "P3" and ticket["suggested_priority"] is None
    assert (
        ticket["subject"]
        == f"來電 {MOBILE_UNKNOWN}：其他 IT 問題 / Call from {MOBILE_UNKNOWN}: other IT problem"
    )
    assert rows(engine, page_table) == []
    assert [c["menu_choice"] for c in rows(engine, call_table)] == ["2", "1"], "each call keeps its choice"


def test_a_call_whose_incoming_webhook_was_lost_is_filed_by_its_status_callback(
    hotline: RunningWebhooks, engine: Engine
) -> None:
    sid = "CA" + "d" * 32
    params = [
        ("CallSid", sid),
        ("AccountSid", "AC" + "0123456789abcdef" * 2),
        ("From", MOBILE_UNKNOWN),
        ("To", HOTLINE),
        ("CallStatus", "completed"),
        ("CallDuration", "3"),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
    ]
    for _ in range(2):  # Twilio retries: the second changes nothing
        status, _ = signed_post(hotline.base_url, PUBLIC_URL, "/twilio/status/hotline", params, AUTH_TOKEN)
        assert status == 200
    (row,) = rows(engine, call_table)
    assert (row["call_sid"], row["outcome"], row["duration_seconds"]) == (sid, "missed", 3)
    ticket = only_ticket(engine)
    assert (
        ticket["callback_requested"] is True and event_kinds(engine, ticket["id"]).count("missed_call") == 1
    )
