"""``[surveys]``: defaults, and errors that name the key."""

from __future__ import annotations

import pytest

from intaked.config import ConfigError, Settings, settings_from_mapping


def test_defaults() -> None:
    surveys = Settings().surveys
    assert (surveys.enabled, surveys.sample_rate, surveys.answer_within) == (True, 1.0, "14d")
    assert surveys.channels == ["mail", "sms"] and surveys.window_seconds == 14 * 86_400


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sample_rate": 1.5}, "surveys.sample_rate"),
        ({"sample_rate": -0.1}, "surveys.sample_rate"),
        ({"answer_within": "soon"}, "surveys.answer_within: .*not a duration"),
        ({"answer_within": "3 working days"}, "surveys.answer_within: .*calendar time"),
        ({"channels": ["fax"]}, r"surveys.channels\[0\]"),
        ({"channels": []}, "surveys.channels"),
        ({"sampling": 1}, "surveys.sampling: unknown key"),
    ],
)
def test_errors_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_mapping({"surveys": values}, environ={})
