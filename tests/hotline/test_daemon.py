"""An emergency call through a real daemon: the fake phone network calls the hotline, the menu's
1 pages the QRC at once, and the page and the caller's acknowledgement leave through the outbox
as real REST requests (checked by Prism against Twilio's spec) to the stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from intaked.ports.phone import INCOMING_PATH, STATUS_PATH
from intaked.store.models import call_table, outbox_table, page_table, ticket_table
from tests.hotline.conftest import CHEN, HOTLINE, MOBILE_KNOWN, hotline_settings
from tests.support.daemon import DaemonThread
from tests.support.incoming_calls import CallerScript
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.waiting import wait_until
from tests.twilio.conftest import PUBLIC_URL


@pytest.fixture
def daemon(
    tmp_path: Path, db_url: str, twilio_api_url: str, phone: FakePhoneNetwork
) -> Iterator[DaemonThread]:
    settings = hotline_settings(
        tmp_path,
        twilio_api_url,
        database={"url": db_url, "sqlite_busy_timeout_ms": 300},
        smtp_intake={"enabled": False},
        daemon={"back_office": "inline"},
        twilio={"timeout_seconds": 5.0, "calls_per_second": 50.0},
        outbound_mail={"host": "127.0.0.1", "port": 1},
        logging={"level": "warning", "format": "json"},
        paging={"check_seconds": 0.1, "call_retries": 0},
    )
    running = DaemonThread(settings).start()
    assert running.daemon.webhooks_address is not None
    host, port = running.daemon.webhooks_address
    phone.deliver_to(PUBLIC_URL, f"http://{host}:{port}")
    phone.inbound_voice_url = PUBLIC_URL + INCOMING_PATH
    phone.hotline_status_url = PUBLIC_URL + STATUS_PATH
    yield running
    running.stop()
    phone.wait_idle()


def test_an_emergency_call_pages_qrc_and_the_caller_gets_the_number_by_sms(
    daemon: DaemonThread, phone: FakePhoneNetwork
) -> None:
    phone.script(CHEN, Script.NO_ANSWER)
    call = phone.place_call(MOBILE_KNOWN, HOTLINE, CallerScript(press="1", voicemail_seconds=25))
    assert [a.status for a in call.to("/twilio/voice/menu")] == [200]
    engine = daemon.engine
    with engine.connect() as conn:
        ticket = conn.execute(select(ticket_table)).mappings().one()
        page = conn.execute(select(page_table)).mappings().one()
        row = conn.execute(select(call_table)).mappings().one()
    assert (ticket["suggested_priority"], ticket["suggestion_trusted"]) == ("P1", True)
    assert page["unconfirmed"] is True and row["outcome"] == "voicemail" and ticket["callback_requested"]

    sms = wait_until(lambda: len(phone.creates("Messages")) >= 2 and phone.creates("Messages"), what="2 SMS")
    bodies = {r.get("To"): r.get("Body") or "" for r in sms}
    assert f"案件編號 {ticket['number']}" in bodies[MOBILE_KNOWN]
    assert "P1 未確認" in bodies[CHEN] and ticket["number"] in bodies[CHEN]
    calls = wait_until(lambda: phone.creates("Calls"), what="the page call")
    assert [r.get("To") for r in calls] == [CHEN]

    def ack_sent() -> bool:
        with engine.connect() as conn:
            state = conn.execute(
                select(outbox_table.c.state).where(outbox_table.c.purpose == "hotline_ack")
            ).scalar_one()
        return bool(state == "sent")

    wait_until(ack_sent, what="the acknowledgement SMS marked sent")


def test_a_call_woken_sms_leaves_at_once_from_the_outbox_process(
    tmp_path: Path, db_url: str, twilio_api_url: str, phone: FakePhoneNetwork
) -> None:
    """The daemon as shipped (back office and outbox processes) with polls of ten minutes: the
    caller's SMS, queued by a webhook in the front process, goes out because the front wakes the
    outbox sender after the webhook's commit, not at the next poll."""
    settings = hotline_settings(
        tmp_path,
        twilio_api_url,
        database={"url": db_url},
        smtp_intake={"enabled": False},
        outbox={"poll_seconds": 600.0},
        paging={"check_seconds": 600.0},  # its pass also looks for due SMS: not this time
        outbound_mail={"host": "127.0.0.1", "port": 1},
        logging={"level": "warning", "format": "json"},
    )
    running = DaemonThread(settings).start()
    try:
        assert running.daemon.back_office is not None and running.daemon.webhooks_address is not None
        host, port = running.daemon.webhooks_address
        phone.deliver_to(PUBLIC_URL, f"http://{host}:{port}")
        phone.inbound_voice_url = PUBLIC_URL + INCOMING_PATH
        phone.hotline_status_url = PUBLIC_URL + STATUS_PATH
        phone.place_call(MOBILE_KNOWN, HOTLINE, CallerScript(press="2", voicemail_seconds=25))
        with running.engine.connect() as conn:
            number = conn.execute(select(ticket_table.c.number)).scalar_one()
        sms = wait_until(lambda: phone.creates("Messages"), timeout=30, what="the caller's SMS")
        assert [(r.get("To"), number in (r.get("Body") or "")) for r in sms] == [(MOBILE_KNOWN, True)]
    finally:
        try:
            phone.wait_idle()  # the SMS's status callbacks reach a running daemon, not a stopping one
        finally:
            running.stop()
