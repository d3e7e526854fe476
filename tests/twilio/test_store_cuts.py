"""PostgreSQL cuts the daemon's connections again and again while a burst of mail comes in and a
P1 page goes out: every report is filed and acknowledged once, the duty commander gets one SMS
and one call, all within seconds of the last cut (issue 13, points 1 and 2)."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import create_engine

from intaked.sla.context import load_context
from intaked.tickets.lifecycle import triage
from tests.support.daemon import DaemonThread, make_settings
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.processes import backlog, cut_connections, send_patiently
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until
from tests.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL
from tests.twilio.test_paging_loop import CHEN, NUMBER, acknowledge_by_sms, new_ticket

MAILS = 60
CUTS = 8


def report(n: int) -> bytes:
    return (
        f"From: user{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: MES 當機 {n}\r\n"
        f"Message-ID: <page-cut-{n}@example.com>\r\n\r\n產線停了\r\n"
    ).encode()


@pytest.mark.slow
def test_cut_connections_repeat_no_mail_sms_or_call(
    pg_url: str, twilio_api_url: str, phone: FakePhoneNetwork, sink: SmtpSink
) -> None:
    name = f"intaked-cut-{uuid.uuid4().hex[:8]}"
    phone.script(CHEN, Script.RINGS)  # the commander's phone rings on: nobody acknowledges
    settings = make_settings(
        f"{pg_url}&application_name={name}",
        daemon={"back_office": "inline"},
        twilio={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": FROM_NUMBER,
            "api_base_url": twilio_api_url,
            "timeout_seconds": 5.0,
            "calls_per_second": 50.0,
        },
        webhooks={"listen": "127.0.0.1:0", "public_url": PUBLIC_URL},
        outbox={"poll_seconds": 0.2, "retry_base_seconds": 0.2, "retry_max_seconds": 1.0},
        outbound_mail={"from_address": "helpdesk@example.com", "host": "127.0.0.1", "port": sink.port},
        acknowledgements={"max_per_sender_per_hour": 100},
        intake={"max_attempts": 100},
        people={"chen": {"phone": CHEN}},
        oncall={"qrc_duty": {"people": ["chen"]}},
        paging={
            "check_seconds": 0.2,
            "call_retries": 0,
            "policies": {"P1": {"repeat": 1, "steps": [{"targets": [{"oncall": "qrc_duty"}]}]}},
        },
    )
    daemon = DaemonThread(settings).start()
    assert daemon.daemon.webhooks_address is not None
    host, port = daemon.daemon.webhooks_address
    phone.deliver_to(PUBLIC_URL, f"http://{host}:{port}")
    admin = create_engine(pg_url, connect_args={"application_name": "intaked-test-admin"})
    try:
        new_ticket(admin)
        accepted: list[int] = []
        sender = send_patiently(daemon.smtp_port, MAILS, report, accepted)
        cut = 0
        for round_ in range(CUTS):
            if round_ == 2:  # the page starts in the middle of the cuts
                triage(admin, load_context(admin, settings), NUMBER, priority="P1", by="field-service")
            time.sleep(0.4)
            cut += cut_connections(admin, name)
        last_cut = time.monotonic()
        assert cut >= CUTS
        sender.join(90)
        assert sorted(accepted) == list(range(MAILS))
        settled_by = max(last_cut, time.monotonic()) + 15

        def settled() -> bool:
            return (
                backlog(admin) == (MAILS + 1, 0, 0)
                and len(sink.messages()) >= MAILS
                and len(phone.creates("Calls")) >= 1
                and len(phone.creates("Messages")) >= 1
            )

        wait_until(settled, timeout=max(1.0, settled_by - time.monotonic()), what="everything done")
        time.sleep(1.5)  # a repeated mail, SMS or call would arrive now
        acks = [m.message["In-Reply-To"] for m in sink.messages()]
        assert len(acks) == MAILS and len(set(acks)) == MAILS, "one acknowledgement per report"
        assert [r.get("To") for r in phone.creates("Messages")] == [CHEN], "one page SMS"
        assert [r.get("To") for r in phone.creates("Calls")] == [CHEN], "one page call"
        acknowledge_by_sms(admin, phone, CHEN)  # the call that still rings is hung up
    finally:
        daemon.stop()
        admin.dispose()
        phone.wait_idle()
