"""The whole paging loop through a real daemon: its outbox places real REST requests (checked by
Prism against Twilio's spec) on the fake phone network, which rings, fetches our TwiML, presses
keys and posts signed callbacks back to the daemon's webhook listener, the way Twilio does."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from intaked.cli import main
from intaked.config import Settings
from intaked.sla.context import load_context
from intaked.store.models import outbox_table, page_attempt_table, page_table, ticket_table
from intaked.tickets.lifecycle import triage
from tests.metrics.scrape import scrape, value
from tests.support.daemon import DaemonThread, make_settings
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.waiting import wait_until
from tests.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL

CHEN, LIN, WANG = "+886911111111", "+886922222222", "+886933333333"
NUMBER = "IT-202611-00042"


def phone_daemon_settings(db_url: str, twilio_api_url: str, **sections: Any) -> Settings:
    """A daemon (back office in process, no SMTP listener) that talks to the fake phone network
    through ``twilio_api_url`` and takes its webhooks, its outbox polled every 50 ms; ``sections``
    add the rest (people, on-call, paging)."""
    return make_settings(
        db_url,
        **sections,
        daemon={"back_office": "inline"},
        smtp_intake={"enabled": False},
        twilio={
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": FROM_NUMBER,
            "api_base_url": twilio_api_url,
            "timeout_seconds": 5.0,
            "calls_per_second": 50.0,
        },
        webhooks={"listen": "127.0.0.1:0", "public_url": PUBLIC_URL},
        outbox={"poll_seconds": 0.05, "retry_base_seconds": 0.05, "retry_max_seconds": 0.2},
        outbound_mail={"from_address": "helpdesk@example.com", "host": "127.0.0.1", "port": 1},
    )


def paging_settings(
    db_url: str,
    twilio_api_url: str,
    *,
    step_after: str,
    paging: dict[str, Any] | None = None,
    **sections: Any,
) -> Settings:
    paging = paging or {}
    return phone_daemon_settings(
        db_url,
        twilio_api_url,
        **sections,
        people={"chen": {"phone": CHEN}, "lin": {"phone": LIN}, "wang": {"phone": WANG}},
        oncall={"qrc_duty": {"people": ["chen"]}, "qrc_backup": {"people": ["lin"]}},
        paging={
            **paging,
            "check_seconds": 0.1,
            "call_retries": 0,
            "policies": {
                "P1": {
                    "repeat": 1,
                    "steps": [
                        {"targets": [{"oncall": "qrc_duty"}], "channels": ["call"]},
                        {"after": step_after, "targets": [{"oncall": "qrc_backup"}], "channels": ["call"]},
                    ],
                }
            },
        },
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'intaked.db'}"


@pytest.fixture
def running(phone: FakePhoneNetwork) -> Iterator[list[DaemonThread]]:
    daemons: list[DaemonThread] = []
    yield daemons
    for daemon in daemons:
        daemon.stop()
    phone.wait_idle()


def start(settings: Settings, phone: FakePhoneNetwork, daemons: list[DaemonThread]) -> DaemonThread:
    daemon = DaemonThread(settings).start()
    daemons.append(daemon)
    assert daemon.daemon.webhooks_address is not None
    host, port = daemon.daemon.webhooks_address
    phone.deliver_to(PUBLIC_URL, f"http://{host}:{port}")
    return daemon


def new_ticket(engine: Engine) -> int:
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(ticket_table)
                .values(
                    number=NUMBER,
                    status="new",
                    channel="email",
                    subject="MES 產線停工",
                    requester_name="王小明",
                    created_at=now,
                    updated_at=now,
                )
                .returning(ticket_table.c.id)
            ).scalar_one()
        )


def page_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(page_table)).mappings().one_or_none()


def acknowledge_by_sms(engine: Engine, phone: FakePhoneNetwork, person_phone: str) -> None:
    """``person_phone`` answers the page's SMS with its reply code; the page is acknowledged and
    the calls that still ring are hung up."""
    code = page_row(engine)["reply_code"]
    phone.inbound_sms_url = f"{PUBLIC_URL}/twilio/sms/incoming"
    assert phone.send_sms_reply(person_phone, FROM_NUMBER, f"確認 {code}").status == 200
    wait_until(lambda: page_row(engine)["state"] == "acknowledged", what="the acknowledgement")
    wait_until(
        lambda: [r for r in phone.requests if r.get("Status") in ("canceled", "completed")],
        what="the ringing call hung up",
    )


def attempt_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(page_attempt_table).order_by(page_attempt_table.c.id)).mappings())


def test_the_commander_does_not_answer_the_backup_presses_1(
    db: str, twilio_api_url: str, phone: FakePhoneNetwork, running: list[DaemonThread], capsys: Any
) -> None:
    phone.script(CHEN, Script.NO_ANSWER)
    phone.script(LIN, Script.ANSWERS_PRESSES_1)
    settings = paging_settings(db, twilio_api_url, step_after="10m", metrics={"listen": "127.0.0.1:0"})
    daemon = start(settings, phone, running)
    engine = daemon.engine
    assert daemon.daemon.metrics_address is not None
    metrics_port = daemon.daemon.metrics_address[1]
    before = scrape(metrics_port)  # the back office runs inline: counted in this process, since its start
    ticket_id = new_ticket(engine)
    triage(engine, load_context(engine, settings), NUMBER, priority="P1", by="field-service")

    page = wait_until(
        lambda: (p := page_row(engine)) is not None and p["state"] == "acknowledged" and p, timeout=30
    )
    assert (page["acknowledged_by"], page["ack_channel"]) == ("lin", "call")
    # chen's unanswered call moved the page on at once, not after the 10 minutes of the policy
    assert [(a["person"], a["status"]) for a in attempt_rows(engine)] == [
        ("chen", "failed"),
        ("lin", "acknowledged"),
    ]
    assert [r.get("To") for r in phone.creates("Calls")] == [CHEN, LIN]
    with engine.connect() as conn:
        assert (
            conn.execute(
                select(ticket_table.c.incident_commander).where(ticket_table.c.id == ticket_id)
            ).scalar()
            == "lin"
        )
    # both people paged hear by SMS that lin has it
    wait_until(lambda: len(phone.creates("Messages")) == 2, what="the confirmations")
    texts = {r.get("To"): r.get("Body") or "" for r in phone.creates("Messages")}
    assert "你是事件指揮官" in texts[LIN] and "已由 lin 確認" in texts[CHEN]
    assert main(["page", "show", NUMBER, "--config", write_config(settings)]) == 0
    shown = capsys.readouterr().out
    assert "acknowledged by lin (call)" in shown and "call to chen" in shown
    # the page's latency is its first call's (chen's), not lin's after the escalation
    after = scrape(metrics_port)
    calls = "intaked_page_latency_seconds_count"
    assert value(after, calls, channel="call") - value(before, calls, channel="call") == 1
    assert value(after, calls, channel="sms") == value(before, calls, channel="sms")


def write_config(settings: Settings) -> str:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "intaked.toml"
    path.write_text(f'[database]\nurl = "{settings.database.url}"\n', encoding="utf-8")
    return str(path)


def test_an_escalation_survives_a_restart_and_nothing_is_doubled(
    db: str, twilio_api_url: str, phone: FakePhoneNetwork, running: list[DaemonThread]
) -> None:
    phone.script(CHEN, Script.RINGS)
    phone.script(LIN, Script.RINGS)
    settings = paging_settings(db, twilio_api_url, step_after="6s")
    first = start(settings, phone, running)
    new_ticket(first.engine)
    triage(first.engine, load_context(first.engine, settings), NUMBER, priority="P1", by="field-service")
    started = time.monotonic()
    wait_until(lambda: len(phone.creates("Calls")) == 1, what="the commander's call")
    first.stop()
    running.remove(first)
    assert len(phone.creates("Calls")) == 1, "stopped before the backup's step was due"
    time.sleep(max(0.0, 6.5 - (time.monotonic() - started)))  # it falls due while no daemon runs
    second = start(settings, phone, running)
    wait_until(
        lambda: len(phone.creates("Calls")) == 2, timeout=20, what="the backup's call after the restart"
    )
    time.sleep(1.0)  # a doubled step would place more calls now
    assert [r.get("To") for r in phone.creates("Calls")] == [CHEN, LIN]
    assert [(a["person"], a["round"], a["step"]) for a in attempt_rows(second.engine)] == [
        ("chen", 0, 0),
        ("lin", 0, 1),
    ]
    # an SMS reply acknowledges and hangs up both calls that still ring
    code = page_row(second.engine)["reply_code"]
    phone.inbound_sms_url = f"{PUBLIC_URL}/twilio/sms/incoming"
    answer = phone.send_sms_reply(LIN, FROM_NUMBER, f"確認 {code}")
    assert answer.status == 200
    page = page_row(second.engine)
    assert (page["state"], page["acknowledged_by"], page["ack_channel"]) == ("acknowledged", "lin", "sms")
    cancels = wait_until(
        lambda: (
            (found := [r for r in phone.requests if r.get("Status") in ("canceled", "completed")])
            and len(found) == 2
            and found
        ),
        what="both calls hung up",
    )
    assert len(cancels) == 2
    wait_until(lambda: len(phone.creates("Messages")) == 2, what="confirmations to chen and lin")
    replay = phone.post_signed(phone.inbound_sms_url, answer.params)
    assert replay.status == 200
    time.sleep(0.5)
    assert len(phone.creates("Messages")) == 2, "a replayed reply confirms nothing twice"


def test_twilio_unreachable_pages_the_qrc_list_by_mail(
    db: str, twilio_api_url: str, phone: FakePhoneNetwork, running: list[DaemonThread]
) -> None:
    phone.down = True  # every REST request gets 503
    phone.script(CHEN, Script.NO_ANSWER)
    phone.script(LIN, Script.NO_ANSWER)
    settings = paging_settings(
        db,
        twilio_api_url,
        step_after="10m",
        paging={"fallback_after": "2s", "fallback_email": "qrc@example.com"},
    )
    daemon = start(settings, phone, running)
    new_ticket(daemon.engine)
    triage(daemon.engine, load_context(daemon.engine, settings), NUMBER, priority="P1", by="field-service")
    page = wait_until(
        lambda: (p := page_row(daemon.engine)) is not None and p["fallback_sent_at"] is not None and p,
        timeout=20,
        what="the e-mail fallback",
    )
    assert page["provider_down_since"] is not None and page["state"] == "active"
    with daemon.engine.connect() as conn:
        mails = (
            conn.execute(select(outbox_table).where(outbox_table.c.purpose == "page_fallback"))
            .mappings()
            .all()
        )
    (mail,) = mails
    assert mail["recipient"] == "qrc@example.com"
    payload = json.loads(mail["payload"])
    assert NUMBER in payload["subject"] and "Twilio unreachable" in payload["text"]
    phone.down = False
    back = time.monotonic()
    wait_until(lambda: page_row(daemon.engine)["provider_down_since"] is None, timeout=20, what="recovery")
    # chen does not answer, so the backup may be called at once after him: the first call counts.
    after = wait_until(lambda: [r.get("To") for r in phone.creates("Calls") if r.at >= back], what="a call")
    assert after[0] == CHEN, "the page went out once Twilio was back"
