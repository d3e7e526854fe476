"""A stopped production line reported by mail and by hotline emergency calls (menu 1) from several
people pages once (issue 19): the first trusted "產線停工" mail pages the QRC, and every later
report within ``paging.group_window``, mailed or phoned, is linked to it; the commander gets one
grouped SMS for the interval, and an update reaches every requester once, the callers by SMS.
Mail through the real parser, calls through the real webhook listener from the fake phone
network, and what the QRC and the callers get is counted at the fake network."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from intaked.config import Settings
from intaked.incidents.updates import send_update
from intaked.paging.grouping import GROUPED_PURPOSE
from intaked.store.models import outbox_table, page_table, ticket_event_table, ticket_table
from intaked.store.types import utcnow
from tests.hotline.conftest import CHEN, HOTLINE, hotline_settings
from tests.hotline.test_emergency_limits import EMERGENCY, send_everything
from tests.paging.test_major_incidents import DOMAIN, grouped_at_chen, ingest_all, mail
from tests.routing.test_ingest_routing import OUR_MTA, RULES
from tests.support.incoming_calls import CallerScript
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.webhookd import RunningWebhooks

CALLERS = [f"+8869120000{n:02d}" for n in range(10)]
OTHER = CallerScript(press="2", voicemail_seconds=5)


@pytest.fixture
def settings(tmp_path: Path, twilio_api_url: str, request: pytest.FixtureRequest) -> Settings:
    """Trusted internal mail, the production-down rule; the test's indirect parameter (a dict of
    sections) adds to it."""
    overrides: dict[str, dict[str, Any]] = getattr(request, "param", {})
    return hotline_settings(
        tmp_path,
        twilio_api_url,
        routing={"rules": RULES},
        trust={"internal_domains": [DOMAIN], "authserv_id": OUR_MTA},
        twilio={"timeout_seconds": 5.0},
        **overrides,
    )


@pytest.fixture(autouse=True)
def qrc_does_not_answer(phone: FakePhoneNetwork) -> None:
    phone.script(CHEN, Script.NO_ANSWER)


def rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).mappings())


def grouped_sms_due_now(engine: Engine) -> None:
    """The grouping interval ends: its SMS is due."""
    with engine.begin() as conn:
        conn.execute(
            update(outbox_table)
            .where(outbox_table.c.purpose == GROUPED_PURPOSE)
            .values(next_attempt_at=utcnow())
        )


def test_mail_and_emergency_calls_of_one_stopped_line_page_once_and_are_linked(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    ingest_all(engine, settings, [mail(0)])
    for index, caller in enumerate(CALLERS):  # calls and mail interleaved
        phone.place_call(caller, HOTLINE, EMERGENCY)
        ingest_all(engine, settings, [mail(2 * index + 1), mail(2 * index + 2)])

    first, *linked = rows(engine, ticket_table)
    (page,) = rows(engine, page_table)
    assert page["ticket_id"] == first["id"], "one page, for the first report"
    assert len(linked) == 30 and {t["major_incident_id"] for t in linked} == {first["id"]}
    assert sorted(t["channel"] for t in linked).count("phone") == 10
    (grouped,) = [r for r in rows(engine, outbox_table) if r["purpose"] == GROUPED_PURPOSE]
    assert f"30 more reports linked to {first['number']}" in json.loads(grouped["payload"])["body"]

    grouped_sms_due_now(engine)
    send_everything(engine, settings)
    send_everything(engine, settings)
    assert len(grouped_at_chen(phone)) == 1, "one grouped SMS for the interval"
    to_chen = [r for r in phone.creates("Calls") if r.get("To") == CHEN]
    assert len(to_chen) == 1, "the QRC's phone rang once"

    sent = send_update(engine, settings, first["number"], "三廠B棟電源已恢復，產線重啟中", by="qrc")
    assert (sent.mails, sent.sms) == (21, 10)
    send_everything(engine, settings)
    updates = [r for r in phone.creates("Messages") if "電源已恢復" in (r.get("Body") or "")]
    assert sorted(r.get("To") for r in updates) == CALLERS, "each caller once, by SMS"


def test_an_emergency_call_with_no_outage_being_paged_pages_by_itself(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    phone.place_call(CALLERS[0], HOTLINE, OTHER)  # not an emergency: no page
    ingest_all(engine, settings, [mail(0, subject="印表機卡紙", body="三樓印表機卡紙")])  # a P3 rule
    phone.place_call(CALLERS[1], HOTLINE, EMERGENCY)
    tickets = rows(engine, ticket_table)
    (page,) = rows(engine, page_table)
    assert page["ticket_id"] == tickets[-1]["id"] and tickets[-1]["channel"] == "phone"
    assert all(t["major_incident_id"] is None for t in tickets)


def test_an_emergency_call_after_the_window_pages_anew(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    ingest_all(engine, settings, [mail(0)])
    with engine.begin() as conn:  # the outage's only report came 31 minutes ago
        conn.execute(update(ticket_table).values(created_at=utcnow() - dt.timedelta(minutes=31)))
    phone.place_call(CALLERS[0], HOTLINE, EMERGENCY)
    tickets = rows(engine, ticket_table)
    assert [p["ticket_id"] for p in rows(engine, page_table)] == [t["id"] for t in tickets]


@pytest.mark.parametrize(
    "settings",
    [{"paging": {"group_hotline_emergencies": False}}],
    indirect=True,
    ids=["grouping of calls off"],
)
def test_with_grouping_of_calls_off_an_emergency_call_pages_anew(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    ingest_all(engine, settings, [mail(0)])
    phone.place_call(CALLERS[0], HOTLINE, EMERGENCY)
    tickets = rows(engine, ticket_table)
    assert [p["ticket_id"] for p in rows(engine, page_table)] == [t["id"] for t in tickets]


@pytest.mark.parametrize(
    "settings", [{"hotline": {"max_unconfirmed_emergency_pages": 1}}], indirect=True, ids=["cap 1"]
)
def test_past_the_emergency_cap_a_call_still_joins_the_major_incident(
    hotline: RunningWebhooks, engine: Engine, phone: FakePhoneNetwork, settings: Settings
) -> None:
    """The outage's grouping comes before the hotline's cap: with one unconfirmed emergency page
    running already (the cap), a call during the mailed outage is linked to the outage, not
    added to that other emergency."""
    phone.place_call(CALLERS[0], HOTLINE, EMERGENCY)  # an emergency of its own: the cap is reached
    ingest_all(engine, settings, [mail(0)])  # the line stops: a page of its own
    phone.place_call(CALLERS[1], HOTLINE, EMERGENCY)
    first_call, outage, second_call = rows(engine, ticket_table)
    assert [p["ticket_id"] for p in rows(engine, page_table)] == [first_call["id"], outage["id"]]
    assert second_call["major_incident_id"] == outage["id"]
    with engine.connect() as conn:
        joined = conn.execute(
            select(ticket_event_table.c.kind).where(ticket_event_table.c.ticket_id == second_call["id"])
        ).scalars()
        assert "emergency_joined" not in list(joined)
