"""Convening the L3 teams to a major incident: ``intaked incident convene`` pages each team's
on-call (SMS with the incident's summary and the war room, a call where the team's policy says
so), and their answers (an SMS reply, 1 or 2 on the call) are recorded as ``convene_joined``
without touching the commander's page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from intaked.cli import main
from intaked.config import ConfigError, Settings, load_settings, settings_from_mapping
from intaked.paging.convene import convene
from intaked.paging.outcomes import acknowledge_ticket, attempt_updated
from intaked.ports.phone import KEYPRESS_PATH, SMS_INCOMING_PATH, VOICE_PAGE_PATH
from intaked.sla.context import load_context
from intaked.store.engine import make_engine
from intaked.store.models import page_attempt_table, ticket_table
from intaked.tickets.lifecycle import triage
from intaked.twilio.routes import PAGING, build_routes
from tests.paging.test_engine import CONFIG, T0, engine, events, new_ticket, outbox, page
from tests.paging.test_paging_webhooks import PUBLIC, TOKEN, post
from tests.support.webhookd import RunningWebhooks, running_webhooks

__all__ = ["engine"]

LEO, CARLOS = "+886944444444", "+886955555555"
BRIDGE = "tel:+886223456789,,1234#"
NUMBER = "IT-202611-00042"


def convene_config() -> dict[str, Any]:
    return CONFIG | {
        "people": CONFIG["people"] | {"leo": {"phone": LEO}, "carlos": {"phone": CARLOS, "language": "en"}},
        "oncall": CONFIG["oncall"]
        | {"server_oncall": {"people": ["leo"]}, "db_oncall": {"people": ["carlos"]}},
        "teams": {
            "server": {"oncall": "server_oncall"},
            "database": {"oncall": "db_oncall", "policy": "P2"},  # P2's first step: SMS only
        },
        "paging": CONFIG["paging"] | {"war_room": BRIDGE},
        "twilio": {
            "account_sid": "AC" + "0123456789abcdef" * 2,
            "auth_token": TOKEN,
            "from_number": "+886212345678",
        },
        "webhooks": {"listen": "127.0.0.1:0", "public_url": PUBLIC},
    }


@pytest.fixture
def settings() -> Settings:
    return settings_from_mapping(convene_config(), environ={})


def commanded_incident(engine: Engine, settings: Settings) -> None:
    new_ticket(engine)
    triage(engine, load_context(engine, settings), NUMBER, priority="P1", by="fs", now=T0)
    acknowledge_ticket(engine, settings, NUMBER, by="chen", now=T0)


def convene_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        query = select(page_attempt_table).where(page_attempt_table.c.step == -1)
        return list(conn.execute(query.order_by(page_attempt_table.c.id)).mappings())


def test_convene_pages_each_teams_oncall_with_the_summary(engine: Engine, settings: Settings) -> None:
    commanded_incident(engine, settings)
    result = convene(engine, settings, NUMBER, ["server", "database"], by="chen", now=T0)
    assert result.paged == {"server": ["leo"], "database": ["carlos"]}
    assert [(a["person"], a["channel"]) for a in convene_rows(engine)] == [
        ("leo", "sms"),
        ("leo", "call"),
        ("carlos", "sms"),
    ]
    code = page(engine)["reply_code"]
    texts = {
        row["recipient"]: json.loads(row["payload"]).get("body")
        for row in outbox(engine, purpose="page")
        if row["recipient"] in (LEO, CARLOS) and row["kind"] == "sms"
    }
    assert texts[LEO] == f"[P1] 召集 server: {NUMBER} MES 產線停工 回覆 1 {code} 加入 會議 {BRIDGE[4:]}"
    assert texts[CARLOS].startswith(f"[P1] Convened (database): {NUMBER}")
    assert texts[CARLOS].endswith(f"Reply 1 {code} to join Bridge +886223456789,,1234#")
    # convening again pages nobody twice
    again = convene(engine, settings, NUMBER, ["server"], by="chen", now=T0)
    assert again.paged == {"server": []} and len(convene_rows(engine)) == 3
    assert page(engine)["state"] == "acknowledged"


@pytest.fixture
def hooks(settings: Settings, engine: Engine) -> Iterator[RunningWebhooks]:
    commanded_incident(engine, settings)
    convene(engine, settings, NUMBER, ["server", "database"], by="chen", now=T0)
    with running_webhooks(settings, engine, build_routes(settings, attempt_updated, [PAGING])) as running:
        yield running


def test_their_answers_are_recorded_as_joined(hooks: RunningWebhooks, engine: Engine) -> None:
    code = page(engine)["reply_code"]
    reply = [("MessageSid", "SM" + "6" * 32), ("From", CARLOS), ("Body", f"1 {code}")]
    status, twiml = post(hooks, SMS_INCOMING_PATH, reply)
    assert status == 200 and f"Joined {NUMBER}" in twiml
    (call,) = [a for a in convene_rows(engine) if a["channel"] == "call"]
    answered = [("CallSid", "CA" + "8" * 32), ("CallStatus", "in-progress"), ("AnsweredBy", "human")]
    status, twiml = post(hooks, f"{VOICE_PAGE_PATH}?attempt={call['id']}", answered)
    assert (
        status == 200
        and "the server team is convened" in twiml
        and "Press 1 to join, 2 to join the bridge" in twiml
    )
    status, twiml = post(hooks, f"{KEYPRESS_PATH}?attempt={call['id']}", [*answered, ("Digits", "2")])
    assert '<Dial><Number sendDigits="ww1234#">+886223456789</Number></Dial>' in twiml
    joined = events(engine, "convene_joined")
    assert [(j["person"], j["team"], j["channel"]) for j in joined] == [
        ("carlos", "database", "sms"),
        ("leo", "server", "call"),
    ]
    p = page(engine)
    assert (p["state"], p["acknowledged_by"]) == ("acknowledged", "chen")
    with engine.connect() as conn:
        commander = conn.execute(select(ticket_table.c.incident_commander)).scalar_one()
    assert commander == "chen"
    # a second answer records nothing more
    post(hooks, SMS_INCOMING_PATH, [("MessageSid", "SM" + "9" * 32), ("From", LEO), ("Body", f"1 {code}")])
    assert len(events(engine, "convene_joined")) == 2


TOML = """
[database]
url = "{url}"
[logging]
level = "warning"
[outbound_mail]
from_address = "helpdesk@example.com"
[people.chen]
phone = "+886911111111"
[people.leo]
phone = "{leo}"
[oncall.qrc_duty]
people = ["chen"]
[oncall.server_oncall]
people = ["leo"]
[teams.server]
oncall = "server_oncall"
[paging.policies.P1]
steps = [{{ targets = [{{ oncall = "qrc_duty" }}] }}]
"""


def test_the_command_convenes_and_refuses_clearly(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("one store is enough for the command line")
    url = f"sqlite:///{tmp_path / 'intaked.db'}"
    config = tmp_path / "intaked.toml"
    config.write_text(TOML.format(url=url, leo=LEO), encoding="utf-8")
    args = ["incident", "convene", NUMBER, "--team", "server", "--by", "chen", "--config", str(config)]
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    settings, _ = load_settings(config)
    eng = make_engine(url)
    try:
        new_ticket(eng)
        assert main(args) == 2
        assert f"{NUMBER} was never paged" in capsys.readouterr().err
        triage(eng, load_context(eng, settings), NUMBER, priority="P1", by="fs")
        assert main(args) == 0
        assert capsys.readouterr().out == f"{NUMBER}: server: paged leo\n"
        assert main(["page", "show", NUMBER, "--config", str(config)]) == 0
        shown = capsys.readouterr().out
        assert f"convened: sms to leo ({LEO}): created" in shown, shown
        assert "round 1 step 1: sms to chen" in shown and "step 0" not in shown
        assert main([*args[:3], "--team", "network", "--config", str(config)]) == 2
        assert "no team named 'network'" in capsys.readouterr().err
    finally:
        eng.dispose()


@pytest.mark.parametrize(
    ("team", "key"),
    [({"oncall": "nobody_oncall"}, "teams.server.oncall"), ({"policy": "P3"}, "teams.server.policy")],
)
def test_a_team_naming_an_unknown_schedule_or_policy_names_the_key(team: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        settings_from_mapping(convene_config() | {"teams": {"server": team}}, environ={})
