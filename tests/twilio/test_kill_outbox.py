"""``kill -9`` of the outbox sender while it waits for Twilio's answer to a P1 page's SMS and
call: the restarted sender asks Twilio what the dead one got done, and the commander's phone gets
one SMS and one call, within seconds of the restart (issue 13, point 1)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select

from intaked.config import load_settings
from intaked.sla.context import load_context
from intaked.store.models import outbox_table
from intaked.tickets.lifecycle import triage
from tests.support.dovecot import free_port
from tests.support.phone import FakePhoneNetwork
from tests.support.processes import DaemonProcess
from tests.support.waiting import wait_until
from tests.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL
from tests.twilio.test_paging_loop import CHEN, NUMBER, acknowledge_by_sms, new_ticket


def config_text(db_url: str, twilio_api_url: str, webhook_port: int) -> str:
    return f"""
[database]
url = "{db_url}"
[metrics]
listen = ""
[smtp_intake]
enabled = false
[outbound_mail]
from_address = "helpdesk@example.com"
host = "127.0.0.1"
port = 1
[outbox]
poll_seconds = 0.2
retry_base_seconds = 0.2
retry_max_seconds = 1.0
[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from_number = "{FROM_NUMBER}"
api_base_url = "{twilio_api_url}"
timeout_seconds = 60.0
calls_per_second = 50.0
[webhooks]
listen = "127.0.0.1:{webhook_port}"
public_url = "{PUBLIC_URL}"
[people.chen]
phone = "{CHEN}"
[oncall.qrc_duty]
people = ["chen"]
[paging]
check_seconds = 0.2
call_retries = 0
[paging.policies.P1]
repeat = 1
steps = [{{targets = [{{oncall = "qrc_duty"}}], channels = ["sms", "call"]}}]
[logging]
level = "info"
format = "json"
"""


def page_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(outbox_table)
                .where(outbox_table.c.kind.in_(["sms", "call"]))
                .order_by(outbox_table.c.id)
            )
        )


@pytest.mark.slow
def test_kill_9_of_the_outbox_sender_waiting_for_twilio_pages_once(
    sqlite_url: str, twilio_api_url: str, phone: FakePhoneNetwork, tmp_path: Path
) -> None:
    webhook_port = free_port()
    config = tmp_path / "intaked.toml"
    config.write_text(config_text(sqlite_url, twilio_api_url, webhook_port), encoding="utf-8")
    settings, _ = load_settings(str(config))
    phone.deliver_to(PUBLIC_URL, f"http://127.0.0.1:{webhook_port}")
    phone.hang_seconds = 20.0
    phone.faults = ["hang", "hang"]  # Twilio takes the SMS and the call, and answers late
    daemon = DaemonProcess(config, tmp_path / "intaked.log")
    engine = create_engine(sqlite_url)
    try:
        daemon.wait_started()
        new_ticket(engine)
        triage(engine, load_context(engine, settings), NUMBER, priority="P1", by="field-service")
        wait_until(
            lambda: phone.creates("Messages") and phone.creates("Calls"),
            timeout=15,
            what="the page's SMS and call reaching Twilio",
        )
        sender = daemon.child("outbox")
        assert {row.state for row in page_rows(engine)} == {"sending"}, "waiting for Twilio's answer"
        os.kill(sender, signal.SIGKILL)

        def recorded() -> bool:
            return [row.state for row in page_rows(engine)] == ["sent", "sent"]

        wait_until(recorded, timeout=15, what="the page's SMS and call recorded after the restart")
        sids = {r.sid for r in phone.resources.values()}
        assert {row.provider_id for row in page_rows(engine)} <= sids, "the Sids Twilio gave the dead sender"
        assert [r.get("To") for r in phone.creates("Messages")] == [CHEN], "one SMS"
        assert [r.get("To") for r in phone.creates("Calls")] == [CHEN], "one call"
        assert b'"event": "twilio_outcome_reconciled"' in daemon.log_text()
        acknowledge_by_sms(engine, phone, CHEN)  # the call that still rings is hung up
    finally:
        daemon.stop()
        engine.dispose()
