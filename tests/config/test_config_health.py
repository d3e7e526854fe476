"""``[health]``: its keys are checked and every error names the key."""

from __future__ import annotations

from typing import Any

import pytest

from intaked.config import ConfigError, settings_from_mapping

TWILIO = {"account_sid": "AC" + "0" * 32, "auth_token": "t", "from_number": "+886212345678"}
WEBHOOKS = {"public_url": "https://intake.example.com"}


def load(**data: Any) -> Any:
    return settings_from_mapping(data, source="test", environ={})


def test_defaults_alarm_nobody_and_ping_nothing() -> None:
    health = load().health
    assert (health.alarm_email, health.alarm_person, health.heartbeat_url) == ("", "", "")
    assert (health.check_seconds, health.ledger_stall_seconds, health.outbox_stall_seconds) == (30, 300, 600)
    assert (health.mailbox_failing_seconds, health.worker_silent_seconds, health.heartbeat_seconds) == (
        600,
        60,
        60,
    )


@pytest.mark.parametrize(
    ("health", "key"),
    [
        ({"alarm_email": "not an address"}, "health.alarm_email"),
        ({"heartbeat_url": "ftp://hc.example.com/x"}, "health.heartbeat_url"),
        ({"check_seconds": 0}, "health.check_seconds"),
        ({"ledger_stall_seconds": -1}, "health.ledger_stall_seconds"),
        ({"alarm_after": 1}, "health.alarm_after"),
    ],
)
def test_a_bad_value_names_its_key(health: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(health=health)


def test_the_alarm_person_must_exist_and_needs_twilio() -> None:
    with pytest.raises(ConfigError, match=r"health\.alarm_person: no person named 'chen'"):
        load(health={"alarm_person": "chen"}, twilio=TWILIO, webhooks=WEBHOOKS)
    people = {"chen": {"phone": "+886912345678", "email": "chen@example.com"}}
    with pytest.raises(ConfigError, match=r"health\.alarm_person: the alarm's SMS needs \[twilio\]"):
        load(health={"alarm_person": "chen"}, people=people)
    settings = load(health={"alarm_person": "chen"}, people=people, twilio=TWILIO, webhooks=WEBHOOKS)
    assert settings.health.alarm_person == "chen"
