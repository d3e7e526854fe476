"""The escalation engine against the real store (SQLite and PostgreSQL): pages start when a
priority becomes known, escalate on their timers or at once on failure, stop on the first
acknowledgement, and never run a step twice."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from intaked.config import Settings, settings_from_mapping
from intaked.paging.outcomes import acknowledge_ticket, attempt_updated
from intaked.paging.pages import start_page, start_pages_for_priorities
from intaked.paging.steps import run_due, run_step_if_current
from intaked.sla.context import load_context
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import (
    outbox_table,
    page_attempt_table,
    page_table,
    ticket_event_table,
    ticket_table,
)
from intaked.tickets.lifecycle import resolve, triage
from intaked.twilio.page_replies import PageCall, sms_reply

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # Monday 10:00 in Taipei
CHEN, LIN, WANG = "+886911111111", "+886922222222", "+886933333333"

CONFIG: dict[str, Any] = {
    "outbound_mail": {"from_address": "helpdesk@example.com"},
    "webhooks": {"public_url": "https://intaked.example.com"},
    "people": {
        "chen": {"phone": CHEN, "email": "chen@example.com"},
        "lin": {"phone": LIN, "email": "lin@example.com"},
        "wang": {"phone": WANG, "email": "wang@example.com"},
    },
    "oncall": {
        "qrc_duty": {"people": ["chen"]},
        "qrc_backup": {"people": ["lin"]},
        "qrc_director": {"people": ["wang"]},
    },
    "paging": {
        "fallback_email": "qrc@example.com",
        "policies": {
            "P1": {
                "repeat": 2,
                "give_up_after": "10m",
                "steps": [
                    {"targets": [{"oncall": "qrc_duty"}], "channels": ["sms", "call"]},
                    {"after": "5m", "targets": [{"oncall": "qrc_backup"}], "channels": ["sms", "call"]},
                    {"after": "10m", "targets": [{"oncall": "qrc_director"}], "channels": ["call"]},
                ],
            },
            "P2": {"repeat": 1, "steps": [{"targets": [{"oncall": "qrc_duty"}], "channels": ["sms"]}]},
        },
    },
}


@pytest.fixture
def settings() -> Settings:
    return settings_from_mapping(CONFIG)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def new_ticket(engine: Engine, number: str = "IT-202611-00042", subject: str = "MES 產線停工") -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(ticket_table)
                .values(
                    number=number,
                    status="new",
                    channel="email",
                    subject=subject,
                    requester_name="王小明",
                    requester_email="ming@example.com",
                    created_at=T0,
                    updated_at=T0,
                )
                .returning(ticket_table.c.id)
            ).scalar_one()
        )


def attempts(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(page_attempt_table).order_by(page_attempt_table.c.id)).mappings().all()
        )


def page(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(page_table)).mappings().one()


def outbox(engine: Engine, **where: Any) -> list[Any]:
    query = select(outbox_table).order_by(outbox_table.c.id)
    for key, value in where.items():
        query = query.where(outbox_table.c[key] == value)
    with engine.connect() as conn:
        return list(conn.execute(query).mappings().all())


def events(engine: Engine, kind: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(ticket_event_table.c.detail).where(ticket_event_table.c.kind == kind))
        return [json.loads(detail) for (detail,) in rows]


def who(rows: list[Any]) -> list[tuple[int, int, str, str]]:
    return [(a["round"], a["step"], a["person"], a["channel"]) for a in rows]


def triage_p1(engine: Engine, settings: Settings, by: str = "field-service") -> None:
    triage(engine, load_context(engine, settings), "IT-202611-00042", priority="P1", by=by, now=T0)


def test_triage_p1_pages_the_duty_commander_at_once_by_sms_and_call(
    engine: Engine, settings: Settings
) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    p = page(engine)
    assert p["state"] == "active" and not p["unconfirmed"] and p["reason"] == "triaged by field-service"
    assert who(attempts(engine)) == [(0, 0, "chen", "sms"), (0, 0, "chen", "call")]
    sms, call = outbox(engine, purpose="page")
    assert sms["kind"] == "sms" and sms["recipient"] == CHEN
    body = json.loads(sms["payload"])["body"]
    assert body.startswith("[P1] IT-202611-00042 MES 產線停工") and f"回覆 1 {p['reply_code']} 確認" in body
    call_payload = json.loads(call["payload"])
    assert call["kind"] == "call" and call_payload["to"] == CHEN
    assert (
        call_payload["url"]
        == f"https://intaked.example.com/twilio/voice/page?attempt={call_payload['attempt_id']}"
    )
    assert p["next_step_at"] == T0 + dt.timedelta(minutes=5)


def test_the_chain_escalates_on_its_timers_repeats_and_gives_up(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=4, seconds=59)) == 0
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=5)) == 1
    assert who(attempts(engine))[2:] == [(0, 1, "lin", "sms"), (0, 1, "lin", "call")]
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=15)) == 1
    assert who(attempts(engine))[4:] == [(0, 2, "wang", "call")]
    # the whole chain again after the wait following the last step
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=24)) == 0
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=25)) == 1
    assert who(attempts(engine))[5:] == [(1, 0, "chen", "sms"), (1, 0, "chen", "call")]
    run_due(engine, settings, T0 + dt.timedelta(minutes=30))
    run_due(engine, settings, T0 + dt.timedelta(minutes=40))
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=50)) == 1
    p = page(engine)
    assert p["state"] == "exhausted" and p["next_step_at"] is None
    assert len(attempts(engine)) == 10
    (fallback,) = outbox(engine, purpose="page_fallback")
    assert fallback["recipient"] == "qrc@example.com"
    assert "nobody acknowledged" in json.loads(fallback["payload"])["text"]
    assert events(engine, "page_exhausted") == [{"page": p["id"], "rounds": 2}]


def test_a_step_run_twice_or_late_does_nothing(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    later = T0 + dt.timedelta(minutes=5)
    assert run_due(engine, settings, later) == 1
    assert run_due(engine, settings, later) == 0, "the same wake-up twice"
    before = len(attempts(engine))
    acknowledge_ticket(engine, settings, "IT-202611-00042", by="lin", now=later + dt.timedelta(seconds=30))
    assert run_due(engine, settings, T0 + dt.timedelta(hours=3)) == 0, "late, after the acknowledgement"
    assert len(attempts(engine)) == before


def test_a_stale_fence_loses(engine: Engine, settings: Settings) -> None:
    """A wake-up that read the page before someone else moved it changes nothing."""
    new_ticket(engine)
    triage_p1(engine, settings)
    stale = page(engine)
    later = T0 + dt.timedelta(minutes=5)
    assert run_step_if_current(engine, settings, stale["id"], stale["fence"], later)
    assert not run_step_if_current(engine, settings, stale["id"], stale["fence"], later)
    assert not run_step_if_current(engine, settings, stale["id"], stale["fence"] + 1, later), "not due yet"
    assert len(attempts(engine)) == 4


def test_every_attempt_of_a_step_failing_escalates_at_once(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    now = T0 + dt.timedelta(seconds=20)
    sms, call = attempts(engine)
    with engine.begin() as conn:
        conn.execute(
            update(page_attempt_table)
            .where(page_attempt_table.c.id == sms["id"])
            .values(status="failed", error_code="30003", ended_at=now)
        )
        attempt_updated(conn, sms["id"], now)
    assert page(engine)["next_step_at"] == T0 + dt.timedelta(minutes=5), "the call may still reach him"
    with engine.begin() as conn:
        conn.execute(
            update(page_attempt_table)
            .where(page_attempt_table.c.id == call["id"])
            .values(status="failed", error_code="21211", ended_at=now)
        )
        attempt_updated(conn, call["id"], now)
    assert page(engine)["next_step_at"] == now
    assert run_due(engine, settings, now) == 1
    assert who(attempts(engine))[2:] == [(0, 1, "lin", "sms"), (0, 1, "lin", "call")]
    assert events(engine, "page_escalated")[0]["why"] == "every attempt of step 1 failed"
    failures = events(engine, "page_attempt_failed")
    assert [(f["person"], f["channel"], f["error_code"]) for f in failures] == [
        ("chen", "sms", "30003"),
        ("chen", "call", "21211"),
    ]


def test_a_busy_call_is_dialled_again_before_escalating(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    now = T0 + dt.timedelta(seconds=40)
    _, call = attempts(engine)
    with engine.begin() as conn:
        conn.execute(
            update(page_attempt_table)
            .where(page_attempt_table.c.id == call["id"])
            .values(status="failed", error="busy", ended_at=now)
        )
        attempt_updated(conn, call["id"], now)
    redial = attempts(engine)[-1]
    assert (redial["person"], redial["channel"], redial["retry"]) == ("chen", "call", 1)
    (row,) = [r for r in outbox(engine) if r["id"] == redial["outbox_id"]]
    assert row["next_attempt_at"] == now + dt.timedelta(minutes=1)
    assert page(engine)["next_step_at"] == T0 + dt.timedelta(minutes=5)


def test_the_first_acknowledgement_wins_cancels_and_confirms(engine: Engine, settings: Settings) -> None:
    ticket_id = new_ticket(engine)
    triage_p1(engine, settings)
    run_due(engine, settings, T0 + dt.timedelta(minutes=5))
    sms_chen, call_chen, sms_lin, call_lin = attempts(engine)
    now = T0 + dt.timedelta(minutes=6)
    with engine.begin() as conn:  # chen's were sent (his call rings), lin's are still queued
        for a, status in ((sms_chen, "delivered"), (call_chen, "ringing")):
            conn.execute(
                update(page_attempt_table).where(page_attempt_table.c.id == a["id"]).values(status=status)
            )
            conn.execute(update(outbox_table).where(outbox_table.c.id == a["outbox_id"]).values(state="sent"))
    result = acknowledge_ticket(engine, settings, "IT-202611-00042", by="chen", now=now)
    assert result.acknowledged and result.by == "chen"
    p = page(engine)
    assert (p["state"], p["acknowledged_by"], p["ack_channel"], p["next_step_at"]) == (
        "acknowledged",
        "chen",
        "cli",
        None,
    )
    with engine.connect() as conn:
        commander = conn.execute(
            select(ticket_table.c.incident_commander).where(ticket_table.c.id == ticket_id)
        ).scalar()
    assert commander == "chen"
    states = {a["id"]: a["status"] for a in attempts(engine)}
    assert states[sms_lin["id"]] == states[call_lin["id"]] == "cancelled"
    assert {r["id"]: r["state"] for r in outbox(engine, purpose="page")}[sms_lin["outbox_id"]] == "cancelled"
    (hangup,) = outbox(engine, kind="call_cancel")
    assert json.loads(hangup["payload"]) == {"attempt_id": call_chen["id"]}
    confirmations = outbox(engine, purpose="page_confirm")
    assert [c["recipient"] for c in confirmations] == [CHEN]
    assert "你是事件指揮官" in json.loads(confirmations[0]["payload"])["body"]
    again = acknowledge_ticket(engine, settings, "IT-202611-00042", by="lin", now=now)
    assert not again.acknowledged and again.by == "chen"
    assert len(outbox(engine, purpose="page_confirm")) == 1


def test_sms_replies_acknowledge_only_for_the_people_paged(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    code = page(engine)["reply_code"]
    now = T0 + dt.timedelta(minutes=1)
    with engine.begin() as conn:
        assert sms_reply(conn, settings, "+886999999999", f"1 {code}", now=now) is not None
        assert sms_reply(conn, settings, CHEN, "1 99999", now=now) is not None  # wrong code
        assert sms_reply(conn, settings, CHEN, "hello", now=now) is None  # not a page reply
    assert page(engine)["state"] == "active"
    with engine.begin() as conn:
        assert sms_reply(conn, settings, CHEN, f"確認 {code}", now=now) is None
    p = page(engine)
    assert (p["state"], p["acknowledged_by"], p["ack_channel"]) == ("acknowledged", "chen", "sms")


def test_keypresses_one_acknowledges_nine_escalates(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    _, call = attempts(engine)
    base = "https://intaked.example.com"
    now = T0 + dt.timedelta(seconds=30)
    with engine.begin() as conn:
        answering = PageCall(conn, settings, call["id"], base_url=base, now=now)
        machine = answering.answered(answered_by="machine_end_beep")
        assert "<Gather" not in machine and "IT-202611-00042" in machine
        human = answering.answered(answered_by="human")
        assert "<Gather" in human and f"keypress?attempt={call['id']}" in human
        assert "Escalating now." in answering.keypress("9")
    assert page(engine)["next_step_at"] == now
    with engine.begin() as conn:
        answer = PageCall(conn, settings, call["id"], base_url=base, now=now).keypress("1")
    assert "你是事件指揮官" in answer
    p = page(engine)
    assert (p["state"], p["acknowledged_by"], p["ack_channel"]) == ("acknowledged", "chen", "call")
    assert {a["id"]: a["status"] for a in attempts(engine)}[call["id"]] == "acknowledged"


def test_provider_unreachable_for_too_long_pages_by_mail_once(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    with engine.begin() as conn:
        conn.execute(update(page_table).values(provider_down_since=T0))
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=1, seconds=59)) == 0
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=2)) == 1
    assert run_due(engine, settings, T0 + dt.timedelta(minutes=3)) == 0
    (mail,) = outbox(engine, purpose="page_fallback")
    assert "Twilio unreachable" in json.loads(mail["payload"])["text"]
    assert page(engine)["fallback_sent_at"] == T0 + dt.timedelta(minutes=2)


def test_trusted_suggestion_pages_unconfirmed_then_a_person_confirms_or_lowers(
    engine: Engine, settings: Settings
) -> None:
    ticket_id = new_ticket(engine)
    with engine.begin() as conn:
        start_page(
            conn,
            settings,
            ticket_id,
            "P1",
            reason="trusted suggestion (rule:mes)",
            unconfirmed=True,
            actor="intaked",
            now=T0,
        )
    assert page(engine)["unconfirmed"]
    sms = json.loads(outbox(engine, kind="sms")[0]["payload"])["body"]
    assert sms.startswith("[P1 未確認]")
    triage_p1(engine, settings)
    assert not page(engine)["unconfirmed"] and len(events(engine, "page_confirmed")) == 1
    assert len(attempts(engine)) == 2, "confirming does not page again"
    triage(
        engine, load_context(engine, settings), "IT-202611-00042", priority="P3", by="field-service", now=T0
    )
    assert page(engine)["state"] == "cancelled"


def test_a_priority_written_by_another_tool_starts_a_page_and_resolving_stops_it(
    engine: Engine, settings: Settings
) -> None:
    ticket_id = new_ticket(engine)
    with engine.begin() as conn:
        conn.execute(update(ticket_table).where(ticket_table.c.id == ticket_id).values(priority="P2"))
    assert start_pages_for_priorities(engine, settings, T0) == 1
    assert start_pages_for_priorities(engine, settings, T0) == 0
    assert page(engine)["reason"] == "priority set by a tool"
    assert who(attempts(engine)) == [(0, 0, "chen", "sms")]
    resolve(engine, load_context(engine, settings), "IT-202611-00042", by="chen", now=T0)
    assert page(engine)["state"] == "cancelled"


def test_the_worker_sees_sends_queued_by_another_process(engine: Engine, settings: Settings) -> None:
    """``intaked ticket triage`` queues the first step in its own process; the daemon's paging
    pass notices due SMS and calls and wakes its sender."""
    from intaked.paging.queries import page_sends_due

    assert not page_sends_due(engine, T0)
    new_ticket(engine)
    triage_p1(engine, settings)
    assert page_sends_due(engine, T0)
    with engine.begin() as conn:
        conn.execute(update(outbox_table).values(next_attempt_at=T0 + dt.timedelta(minutes=1)))
    assert not page_sends_due(engine, T0), "a deferred retry is not due yet"
    assert page_sends_due(engine, T0 + dt.timedelta(minutes=1))
    with engine.begin() as conn:
        conn.execute(update(outbox_table).values(state="sent"))
    assert not page_sends_due(engine, T0 + dt.timedelta(minutes=1))


def test_a_late_answer_to_a_given_up_page_still_takes_command(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    for minutes in (5, 15, 25, 30, 40, 50):
        run_due(engine, settings, T0 + dt.timedelta(minutes=minutes))
    assert page(engine)["state"] == "exhausted"
    code = page(engine)["reply_code"]
    with engine.begin() as conn:
        assert sms_reply(conn, settings, LIN, f"1 {code}", now=T0 + dt.timedelta(hours=1)) is None
    p = page(engine)
    assert (p["state"], p["acknowledged_by"]) == ("acknowledged", "lin")


def test_9_on_an_earlier_steps_call_does_not_skip_the_current_step(
    engine: Engine, settings: Settings
) -> None:
    new_ticket(engine)
    triage_p1(engine, settings)
    _, chen_call = attempts(engine)
    run_due(engine, settings, T0 + dt.timedelta(minutes=5))  # lin's step ran; the director is next
    due = page(engine)["next_step_at"]
    now = T0 + dt.timedelta(minutes=6)
    with engine.begin() as conn:
        PageCall(conn, settings, chen_call["id"], base_url="https://h", now=now).keypress("9")
    assert page(engine)["next_step_at"] == due, "chen's old call cannot cut lin's step short"
    lin_call = attempts(engine)[3]
    with engine.begin() as conn:
        PageCall(conn, settings, lin_call["id"], base_url="https://h", now=now).keypress("9")
    assert page(engine)["next_step_at"] == now


def test_triaging_a_resolved_ticket_wakes_no_one(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    with engine.begin() as conn:
        conn.execute(update(ticket_table).values(status="resolved"))
    triage_p1(engine, settings)
    assert attempts(engine) == [] and outbox(engine) == []


def test_a_wake_up_with_a_stale_fence_loses_even_when_the_page_is_due(
    engine: Engine, settings: Settings
) -> None:
    """Someone pressed 9 (the page is due now, fence moved on): a wake-up that read the old
    fence runs nothing; one with the current fence runs the step once."""
    from intaked.paging.outcomes import escalate_now
    from intaked.paging.rows import lock_page

    new_ticket(engine)
    triage_p1(engine, settings)
    stale = page(engine)
    now = T0 + dt.timedelta(minutes=1)
    with engine.begin() as conn:
        escalate_now(conn, lock_page(conn, stale["id"]), reason="test", actor="t", now=now)
    assert not run_step_if_current(engine, settings, stale["id"], stale["fence"], now)
    assert len(attempts(engine)) == 2
    assert run_step_if_current(engine, settings, stale["id"], page(engine)["fence"], now)
    assert len(attempts(engine)) == 4


def test_a_priority_raised_again_before_the_pass_commits_keeps_its_page(
    engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another tool writes P3, then a person puts P1 back while the paging pass is between its
    read and its transaction: the pass decides on the ticket as it is then, and cancels nothing."""
    from intaked.paging import pages as paging_engine

    ticket_id = new_ticket(engine)
    triage_p1(engine, settings)
    with engine.begin() as conn:
        conn.execute(update(ticket_table).where(ticket_table.c.id == ticket_id).values(priority="P3"))
    decide = paging_engine._follow_up
    calls: list[str | None] = []

    def person_restores_p1_after_the_read(unconfirmed: bool, priority: str | None, status: str) -> str | None:
        decision = decide(unconfirmed, priority, status)
        if not calls:
            with engine.begin() as conn:
                conn.execute(update(ticket_table).where(ticket_table.c.id == ticket_id).values(priority="P1"))
        calls.append(decision)
        return decision

    monkeypatch.setattr(paging_engine, "_follow_up", person_restores_p1_after_the_read)
    start_pages_for_priorities(engine, settings, T0 + dt.timedelta(minutes=1))
    assert calls == ["priority set to P3", None], "the stale read said cancel; the fresh one did not"
    assert page(engine)["state"] == "active"
