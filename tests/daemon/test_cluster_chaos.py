"""Three whole daemons on one PostgreSQL database, one of them killed (SIGKILL to its process tree,
as a dead host) every few seconds and started again, while mail arrives over SMTP spread over the
three (an MTA trying another MX on failure), hotline calls come in through a load balancer in
front of their webhook listeners, mail is APPENDed to one IMAP mailbox (a real Dovecot) all three
are configured with, and a P1 page escalates on the fake phone network (Prism checking every
request against Twilio's spec). At the end: every mail answered 250 or APPENDed is exactly one
ticket and every APPENDed mail was moved once, every call is exactly one ticket, the page's SMS
and calls each reached Twilio once, and the escalation's second step came at most 30 s after it
was due."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from intaked.config import load_settings
from intaked.ports.phone import INCOMING_PATH, STATUS_PATH
from intaked.sla.context import load_context
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import (
    call_table,
    inbound_item_table,
    job_run_table,
    message_table,
    outbox_table,
    page_table,
    ticket_table,
)
from intaked.tickets.lifecycle import triage
from tests.support.balancer import Balancer
from tests.support.cluster import ClusterMailer, Node, report
from tests.support.dovecot import PASSWORD as IMAP_PASSWORD
from tests.support.dovecot import USER as IMAP_USER
from tests.support.dovecot import Dovecot, dovecot_unavailable_reason
from tests.support.incoming_calls import CallerScript
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until
from tests.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_URL
from tests.twilio.test_paging_loop import acknowledge_by_sms

CHEN, LIN = "+886911111111", "+886922222222"
HOTLINE = "+886225551234"
NUMBER = "IT-202612-09001"
MAILS = 120
APPENDED = 40
CALLS = 8
CHAOS_SECONDS = 40.0
STEP_AFTER = 20.0  # the page's second step is due this long after it started


def shared_config(sink: SmtpSink, twilio_api_url: str, dovecot: Dovecot) -> str:
    return f"""
[[imap]]
name = "helpdesk"
host = "127.0.0.1"
port = {dovecot.port}
tls = "none"
username = "{IMAP_USER}"
password = "{IMAP_PASSWORD}"
poll_seconds = 0.5
reconnect_max_seconds = 0.5
auth_retry_seconds = 0.5
timeout_seconds = 10
[outbound_mail]
host = "127.0.0.1"
port = {sink.port}
from_address = "helpdesk@example.com"
[outbox]
poll_seconds = 0.2
retry_base_seconds = 0.2
retry_max_seconds = 1.0
[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
from_number = "{FROM_NUMBER}"
api_base_url = "{twilio_api_url}"
timeout_seconds = 30.0
calls_per_second = 50.0
[hotline]
numbers = ["{HOTLINE}"]
reconcile_interval = "10s"
[people.chen]
phone = "{CHEN}"
[people.lin]
phone = "{LIN}"
[oncall.qrc_duty]
people = ["chen"]
[oncall.qrc_backup]
people = ["lin"]
[sla]
check_seconds = 2
[paging]
check_seconds = 0.5
call_retries = 0
[paging.policies.P1]
repeat = 1
steps = [
  {{targets = [{{oncall = "qrc_duty"}}], channels = ["sms", "call"]}},
  {{after = "{STEP_AFTER:g}s", targets = [{{oncall = "qrc_backup"}}], channels = ["call"]}},
]
"""


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if reason := dovecot_unavailable_reason():
        pytest.skip(reason)
    with Dovecot() as server:
        yield server


@pytest.fixture
def cluster(
    pg_url: str,
    sink: SmtpSink,
    twilio_api_url: str,
    phone: FakePhoneNetwork,
    dovecot: Dovecot,
    tmp_path: Path,
) -> Iterator[list[Node]]:
    engine = make_engine(pg_url)
    upgrade(engine)  # once, before three daemons start on it
    engine.dispose()
    extra = shared_config(sink, twilio_api_url, dovecot)
    nodes = [
        Node(f"node-{name}", tmp_path / name, pg_url, extra=extra, public_url=PUBLIC_URL)
        for name in ("a", "b", "c")
    ]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def new_p1(engine: Engine, config: Path) -> dt.datetime:
    """A ticket triaged P1: its page starts; returns when."""
    settings, _ = load_settings(str(config))
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(ticket_table).values(
                number=NUMBER,
                status="new",
                channel="email",
                subject="MES 產線停工",
                requester_name="王小明",
                created_at=now,
                updated_at=now,
            )
        )
    triage(engine, load_context(engine, settings), NUMBER, priority="P1", by="field-service")
    return now


def chaos(nodes: list[Node], until: float, kills: list[str]) -> None:
    """Kill a random node (its whole tree) every few seconds and start it again."""
    chooser = random.Random(1207)
    while time.monotonic() < until:
        time.sleep(chooser.uniform(3.0, 5.0))
        victim = chooser.choice(nodes)
        victim.kill()
        kills.append(victim.name)
        time.sleep(chooser.uniform(0.5, 2.0))
        victim.start()


def place_calls(phone: FakePhoneNetwork, placed: list[str]) -> None:
    for n in range(CALLS):
        sid = f"CA{n:032x}"
        # a webhook cut short by a kill: Twilio gives up on it; reconciliation finds the call
        with contextlib.suppress(Exception):
            phone.place_call(f"+88691230{n:04d}", HOTLINE, CallerScript(press="2"), call_sid=sid)
        placed.append(sid)
        time.sleep(2.0)


def append_mail(dovecot: Dovecot, appended: list[str]) -> None:
    for n in range(APPENDED):
        message_id, raw = report(n, "imap-chaos")
        dovecot.append([raw])
        appended.append(message_id)
        time.sleep(0.8)


def counts(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        per_mid = dict(  # stored without the angle brackets
            conn.execute(
                select(message_table.c.header_message_id, func.count()).group_by(
                    message_table.c.header_message_id
                )
            ).all()
        )
        calls = dict(conn.execute(select(call_table.c.call_sid, call_table.c.ticket_id)).all())
        waiting_items = conn.execute(
            select(func.count()).where(inbound_item_table.c.state.in_(["received", "processing"]))
        ).scalar_one()
        unsent = conn.execute(
            select(func.count()).where(
                outbox_table.c.state.in_(["pending", "sending"]), outbox_table.c.kind == "mail"
            )
        ).scalar_one()
    per_mid = {f"<{mid}>": n for mid, n in per_mid.items()}
    return {"per_mid": per_mid, "calls": calls, "waiting": waiting_items, "unsent_mail": unsent}


@pytest.mark.slow
def test_three_nodes_with_one_killed_every_few_seconds_lose_and_double_nothing(
    cluster: list[Node], pg_url: str, phone: FakePhoneNetwork, dovecot: Dovecot
) -> None:
    phone.script(CHEN, Script.RINGS)
    phone.script(LIN, Script.RINGS)
    engine = make_engine(pg_url)

    def live() -> list[tuple[str, int]]:
        return [("127.0.0.1", node.webhook_port) for node in cluster if node.running]

    with Balancer(live) as balancer:
        phone.deliver_to(PUBLIC_URL, balancer.url)
        phone.inbound_voice_url = PUBLIC_URL + INCOMING_PATH
        phone.hotline_status_url = PUBLIC_URL + STATUS_PATH
        mailer = ClusterMailer(cluster)
        reports = [report(n, "chaos") for n in range(MAILS)]
        sending = mailer.send_all(reports, pause=0.2)
        page_started = new_p1(engine, cluster[0].config)
        placed: list[str] = []
        calling = threading.Thread(target=place_calls, args=(phone, placed), daemon=True)
        calling.start()
        appended: list[str] = []
        appending = threading.Thread(target=append_mail, args=(dovecot, appended), daemon=True)
        appending.start()
        kills: list[str] = []
        chaos(cluster, time.monotonic() + CHAOS_SECONDS, kills)
        sending.join(180)
        calling.join(120)
        appending.join(60)
        assert not sending.is_alive() and not calling.is_alive() and not appending.is_alive()
        assert len(kills) >= 4, kills

        # the escalation's second step: at most 30 s after it was due, whatever was killed
        lin_calls = wait_until(
            lambda: [r for r in phone.creates("Calls") if r.get("To") == LIN],
            timeout=max(5.0, page_started.timestamp() + STEP_AFTER + 30 - time.time()),
            what="the page's second step (the call to lin)",
        )
        assert len(lin_calls) == 1
        sms_to_chen = [r for r in phone.creates("Messages") if r.get("To") == CHEN]
        calls_to_chen = [r for r in phone.creates("Calls") if r.get("To") == CHEN]
        assert len(sms_to_chen) == 1, "the page's SMS reached Twilio once"
        assert len(calls_to_chen) == 1, "the page's first call reached Twilio once"

        def settled() -> dict[str, Any] | None:
            found = counts(engine)
            mail = set(mailer.accepted) | set(appended)
            done = mail <= set(found["per_mid"]) and set(placed) <= set(found["calls"])
            return found if done and found["waiting"] == 0 else None

        try:
            final = wait_until(settled, timeout=120, what="every mail and call filed")
        except AssertionError:
            found = counts(engine)
            missing_mail = sorted((set(mailer.accepted) | set(appended)) - set(found["per_mid"]))
            missing_calls = sorted(set(placed) - set(found["calls"]))
            raise AssertionError(
                f"not filed: mail {missing_mail}, calls {missing_calls}; waiting items {found['waiting']}"
            ) from None
        acknowledge_by_sms(engine, phone, LIN)  # lin has it: the calls still ringing are hung up

        def to_chen() -> list[str]:
            return [r.get("Body") or "" for r in phone.creates("Messages") if r.get("To") == CHEN]

        wait_until(lambda: len(to_chen()) == 2, what="chen told that lin has it")
        time.sleep(1.0)
        assert len(to_chen()) == 2 and "已由 lin 確認" in to_chen()[1], "the page's SMS and one confirmation"
    engine.dispose()
    sent = set(mailer.accepted) | set(appended)
    doubled = {mid: n for mid, n in final["per_mid"].items() if mid in sent and n != 1}
    assert doubled == {}, "a mail answered 250 or APPENDed stored more than once"
    assert len(mailer.accepted) == MAILS
    wait_until(lambda: dovecot.count("INBOX") == 0, what="the mailbox drained")
    assert dovecot.count("Processed") == APPENDED, "every APPENDed mail moved once"
    assert len(set(final["calls"][sid] for sid in placed)) == CALLS, "each call its own ticket"
    assert page_row_state(pg_url) == "acknowledged"
    runs = job_runs(pg_url)
    slots = collections.Counter((job, slot) for job, slot, _ in runs)
    assert [key for key, n in slots.items() if n > 1] == [], "a periodic job ran twice in one interval"
    ran_sla = {node for job, _, node in runs if job == "sla_check"}
    assert len(ran_sla) >= 2, f"the SLA checks stayed on one node through the kills: {ran_sla}"


def job_runs(url: str) -> list[tuple[str, dt.datetime, str]]:
    """Every (job, slot, node that ran it)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            runs = job_run_table
            return [tuple(row) for row in conn.execute(select(runs.c.job, runs.c.slot_start, runs.c.node))]
    finally:
        engine.dispose()


def page_row_state(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(select(page_table.c.state)).scalar_one())
    finally:
        engine.dispose()
