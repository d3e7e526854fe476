"""Reconciliation: calls that happened while intaked could not be reached are found in Twilio's
Calls list (the fake network behind Prism) and filed once, however often it runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from intaked.hotline.reconcile import checkpoint_name, reconcile_calls, reconcile_recordings
from intaked.store.models import call_table, hotline_checkpoint_table, outbox_table, ticket_table
from intaked.twilio.client import TwilioClient
from tests.hotline.conftest import HOTLINE, LANDLINE_UNKNOWN, MOBILE_UNKNOWN, hotline_settings
from tests.support.incoming_calls import CallerScript
from tests.support.phone import FakePhoneNetwork
from tests.support.webhookd import RunningWebhooks
from tests.twilio.conftest import PUBLIC_URL


def table_rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table)).mappings())


def test_calls_missed_while_down_are_filed_once_by_reconciliation(
    tmp_path: Path, engine: Engine, phone: FakePhoneNetwork, twilio_api_url: str, hotline: RunningWebhooks
) -> None:
    settings = hotline_settings(tmp_path, twilio_api_url)
    client = TwilioClient(settings.twilio)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    # one call while intaked answers: filed by its webhooks
    heard = phone.place_call(LANDLINE_UNKNOWN, HOTLINE, CallerScript(press="2", voicemail_seconds=4))
    # intaked unreachable: Twilio's requests fail, the caller hangs up
    phone.deliver_to(PUBLIC_URL, "http://127.0.0.1:1")
    lost = phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(press="1"))
    assert {a.status for a in lost.answers} == {0}, "no webhook of the lost call got through"
    assert [c["call_sid"] for c in table_rows(engine, call_table)] == [heard.sid]

    assert reconcile_calls(engine, settings, client, now=dt.datetime.now(dt.UTC)) == 1
    assert reconcile_calls(engine, settings, client, now=dt.datetime.now(dt.UTC)) == 0, "nothing twice"
    calls = {c["call_sid"]: c for c in table_rows(engine, call_table)}
    assert set(calls) == {heard.sid, lost.sid}
    found = calls[lost.sid]
    assert found["source"] == "reconciliation" and found["outcome"] == "missed"
    assert found["twilio_status"] == "completed" and found["from_number"] == MOBILE_UNKNOWN
    assert calls[heard.sid]["outcome"] == "voicemail" and calls[heard.sid]["source"] == "webhook"
    tickets = {t["id"]: t for t in table_rows(engine, ticket_table)}
    assert len(tickets) == 2 and tickets[found["ticket_id"]]["callback_requested"] is True
    acks = [r["recipient"] for r in table_rows(engine, outbox_table) if r["purpose"] == "hotline_ack"]
    assert acks == [MOBILE_UNKNOWN], "the caller found by reconciliation is acknowledged once"
    (checkpoint,) = table_rows(engine, hotline_checkpoint_table)
    assert checkpoint["name"] == checkpoint_name(HOTLINE) and checkpoint["last_error"] is None
    assert checkpoint["covered_until"] >= start
    lists = [r for r in phone.requests if r.method == "GET" and r.path.endswith("/Calls.json")]
    assert lists and all(r.get("To") == HOTLINE and r.get("StartTime>") for r in lists)


def test_a_voicemail_whose_callbacks_were_lost_is_found_in_the_recordings_list(
    tmp_path: Path, engine: Engine, phone: FakePhoneNetwork, twilio_api_url: str, hotline: RunningWebhooks
) -> None:
    """The call's own webhooks got through, its recording callbacks did not (intaked went down
    as the caller recorded): reconciliation applies the recording once and queues its download."""
    settings = hotline_settings(tmp_path, twilio_api_url)
    client = TwilioClient(settings.twilio)
    phone.recording_callbacks_lost = True
    call = phone.place_call(MOBILE_UNKNOWN, HOTLINE, CallerScript(press="2", voicemail_seconds=30))
    (row,) = table_rows(engine, call_table)
    assert row["call_sid"] == call.sid and row["recording_sid"] is None, "no recording callback arrived"

    now = dt.datetime.now(dt.UTC)
    reconcile_calls(engine, settings, client, now=now)
    assert reconcile_recordings(engine, settings, client, now=now) == 1
    assert reconcile_recordings(engine, settings, client, now=now) == 0, "applied once"
    (row,) = table_rows(engine, call_table)
    assert row["recording_sid"] is not None and row["recording_seconds"] == 30
    downloads = [r for r in table_rows(engine, outbox_table) if r["kind"] == "recording"]
    assert [d["recipient"] for d in downloads] == [call.sid]
    lists = [r for r in phone.requests if r.method == "GET" and r.path.endswith("/Recordings.json")]
    assert [r.get("CallSid") for r in lists] == [call.sid], "only the call without a recording is looked up"
    checkpoint = {c["name"]: c for c in table_rows(engine, hotline_checkpoint_table)}["recordings"]
    assert checkpoint["last_error"] is None and checkpoint["covered_until"] <= now
