"""The war room and the convene through a real daemon and the fake phone network: the page SMS
names the bridge, the commander presses 2 (acknowledged, and the answer ``<Dial>``s the bridge
with its code), then ``intaked incident convene`` texts two teams' on-call, whose SMS replies
are recorded as joined."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from intaked.cli import main
from intaked.config import Settings
from intaked.sla.context import load_context
from intaked.store.models import outbox_table, ticket_event_table
from intaked.tickets.lifecycle import triage
from tests.support.daemon import DaemonThread
from tests.support.phone import FakePhoneNetwork, Script
from tests.support.waiting import wait_until
from tests.twilio.conftest import FROM_NUMBER, PUBLIC_URL
from tests.twilio.test_paging_loop import (
    NUMBER,
    db,
    new_ticket,
    page_row,
    phone_daemon_settings,
    running,
    start,
)

__all__ = ["db", "running"]

CHEN, LEO, PRIYA = "+886911111111", "+886944444444", "+886955555555"
BRIDGE = "tel:+886223456789,,1234#"
#: What the operator's `intaked incident convene` reads (the daemon's settings, as a file).
CONFIG = """
[database]
url = "{url}"
[logging]
level = "warning"
[people.leo]
phone = "{leo}"
[people.priya]
phone = "{priya}"
[oncall.server_oncall]
people = ["leo"]
[oncall.db_oncall]
people = ["priya"]
[teams.server]
oncall = "server_oncall"
policy = "P2"
[teams.database]
oncall = "db_oncall"
policy = "P2"
[paging.policies.P2]
steps = [{{ targets = [{{ oncall = "db_oncall" }}], channels = ["sms"] }}]
"""


def war_room_settings(db_url: str, twilio_api_url: str) -> Settings:
    return phone_daemon_settings(
        db_url,
        twilio_api_url,
        people={"chen": {"phone": CHEN}, "leo": {"phone": LEO}, "priya": {"phone": PRIYA}},
        oncall={
            "qrc_duty": {"people": ["chen"]},
            "server_oncall": {"people": ["leo"]},
            "db_oncall": {"people": ["priya"]},
        },
        teams={"server": {"oncall": "server_oncall"}, "database": {"oncall": "db_oncall"}},
        paging={
            "check_seconds": 0.1,
            "call_retries": 0,
            "war_room": BRIDGE,
            "policies": {
                "P1": {
                    "repeat": 1,
                    "steps": [{"targets": [{"oncall": "qrc_duty"}], "channels": ["sms", "call"]}],
                },
                "P2": {"repeat": 1, "steps": [{"targets": [{"oncall": "qrc_duty"}], "channels": ["sms"]}]},
            },
        },
    )


def joined(engine: Any) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(ticket_event_table.c.detail).where(ticket_event_table.c.kind == "convene_joined")
        ).scalars()
        return sorted((json.loads(d)["person"], json.loads(d)["team"]) for d in rows)


def outbox_rows(engine: Engine, purpose: str, kind: str) -> list[Any]:
    with engine.connect() as conn:
        query = select(outbox_table).where(outbox_table.c.purpose == purpose, outbox_table.c.kind == kind)
        return list(conn.execute(query.order_by(outbox_table.c.id)).mappings())


def test_the_bridge_is_paged_joined_and_the_teams_convened(
    db: str, twilio_api_url: str, phone: FakePhoneNetwork, running: list[DaemonThread], tmp_path: Path
) -> None:
    phone.script(CHEN, Script.ANSWERS_PRESSES_2)
    settings = war_room_settings(db, twilio_api_url)
    daemon = start(settings, phone, running)
    engine = daemon.engine
    new_ticket(engine)
    triage(engine, load_context(engine, settings), NUMBER, priority="P1", by="field-service")
    page = wait_until(
        lambda: (p := page_row(engine)) is not None and p["state"] == "acknowledged" and p, timeout=30
    )
    assert (page["acknowledged_by"], page["ack_channel"]) == ("chen", "call")
    # The page's SMS and call leave together; the call may be answered (and the SMS cancelled)
    # before the SMS went out on a loaded machine: the text is the outbox row's, and the one at
    # the fake network when it was sent.
    sms_row = wait_until(
        lambda: next(
            (r for r in outbox_rows(engine, "page", "sms") if r["state"] in ("sent", "cancelled")), None
        ),
        timeout=30,
    )
    page_sms = json.loads(sms_row["payload"])["body"]
    if sms_row["state"] == "sent":
        assert next(r.get("Body") for r in phone.creates("Messages") if r.get("To") == CHEN) == page_sms
    assert page_sms.startswith(f"[P1] {NUMBER}") and page_sms.endswith("會議 +886223456789,,1234#")
    # The page is acknowledged (committed) before the webhook's answer, the <Dial>, reaches the
    # fake network: wait for the answer.
    dialled = wait_until(
        lambda: [c.body for c in phone.callbacks if "<Dial>" in c.body], timeout=30, what="the <Dial> answer"
    )
    assert '<Number sendDigits="ww1234#">+886223456789</Number>' in dialled[0]

    config = tmp_path / "intaked.toml"
    config.write_text(CONFIG.format(url=settings.database.url, leo=LEO, priya=PRIYA), encoding="utf-8")
    teams = ["--team", "server", "--team", "database"]
    assert main(["incident", "convene", NUMBER, *teams, "--by", "chen", "--config", str(config)]) == 0
    wait_until(lambda: {r.get("To") for r in phone.creates("Messages")} >= {LEO, PRIYA}, what="convene SMS")
    texts = {r.get("To"): r.get("Body") or "" for r in phone.creates("Messages")}
    assert texts[LEO].startswith(f"[P1] 召集 server: {NUMBER} MES 產線停工")
    assert texts[PRIYA].startswith(f"[P1] 召集 database: {NUMBER}") and "+886223456789,,1234#" in texts[PRIYA]
    phone.inbound_sms_url = f"{PUBLIC_URL}/twilio/sms/incoming"
    for person in (LEO, PRIYA):
        answer = phone.send_sms_reply(person, FROM_NUMBER, f"1 {page['reply_code']}")
        assert answer.status == 200 and f"Joined {NUMBER}" in answer.body
    assert joined(engine) == [("leo", "server"), ("priya", "database")]
