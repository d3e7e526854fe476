"""``[reports]`` and ``[teams.<name>] notify_new``: what they accept, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from intaked.config import ConfigError, settings_from_mapping


def load(**sections: Any) -> Any:
    return settings_from_mapping(sections, source="intaked.toml", environ={})


def test_defaults_send_nothing() -> None:
    reports = load().reports
    assert not reports.enabled
    assert (reports.weekly.by, reports.weekly.send_at, reports.weekly.recipients) == ("team", "08:00", [])


def test_a_report_with_recipients() -> None:
    monthly = {"recipients": "Boss@Example.com", "by": "handler", "send_at": "07:30"}
    reports = load(reports={"monthly": monthly}).reports
    assert reports.enabled and not reports.weekly.enabled
    assert reports.monthly.recipients == ["boss@example.com"]
    assert (reports.monthly.by, reports.monthly.send_time) == ("handler", (7, 30))


@pytest.mark.parametrize(
    ("reports", "message"),
    [
        ({"weekly": {"send_at": "8am"}}, "intaked.toml: reports.weekly.send_at: '8am' is not a time of day"),
        ({"weekly": {"send_at": "24:00"}}, "reports.weekly.send_at: '24:00' is not a time of day"),
        ({"monthly": {"by": "site"}}, "reports.monthly.by: Input should be 'team', 'handler' or 'priority'"),
        ({"monthly": {"recipients": ["not an address"]}}, "reports.monthly.recipients[0]: 'not an address'"),
        ({"weekly": {"recipient": ["a@example.com"]}}, "reports.weekly.recipient: unknown key"),
        ({"check_seconds": 0}, "reports.check_seconds: Input should be greater than 0"),
    ],
)
def test_bad_reports_name_the_key(reports: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(reports=reports)
    assert message in str(caught.value)


def test_notify_new_needs_the_team_mailbox() -> None:
    team = {"email": "net@example.com", "notify_new": True}
    assert load(teams={"network": team}).teams["network"].notify_new
    with pytest.raises(ConfigError) as caught:
        load(teams={"network": {"notify_new": True}})
    assert "teams.network: notify_new = true needs the team's email" in str(caught.value)
