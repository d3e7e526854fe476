"""The schema of ``[security]``: security incidents (docs/security-incidents.md): the team told
of each one, the notification deadline, and per level (``[security.levels.N]``, 1-4, 4 the most
severe) the damage-control deadline and the internal reporting chain."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator

from intaked.config.durations import parse_duration
from intaked.config.fields import Section

LEVELS = (1, 2, 3, 4)
#: 資通安全事件通報及應變辦法 (2021 text): damage control or recovery within 72 h for levels 1-2,
#: 36 h for levels 3-4.
DEFAULT_CONTAIN = {1: "72h", 2: "72h", 3: "36h", 4: "36h"}


def _clock_duration(value: str) -> str:
    """``value`` if it is a plain duration ("1h", "36h"): these clocks run 24x7."""
    if "working" in value.lower() or "business" in value.lower():
        raise ValueError(f"{value!r}: security clocks count calendar time (24x7); write e.g. 36h")
    span, days = parse_duration(value)
    if not days and not span:
        raise ValueError(f"{value!r} is no time at all: write e.g. 1h")
    return value


ClockDuration = Annotated[str, AfterValidator(_clock_duration)]


def duration_of(value: str) -> dt.timedelta:
    """A checked clock duration as a timedelta."""
    span, days = parse_duration(value)
    return span + dt.timedelta(days=days)


class SecurityLevelSettings(Section):
    """``[security.levels.N]``: what level N calls for."""

    contain_within: ClockDuration | None = None  # None = the regulation's default for the level
    # Told by mail when the level is first set or raised to N: addresses, or names of [people.*]
    # (their email) or [teams.*] (their lead_email and email).
    notify: list[str] = Field(default_factory=list)
    page: bool = False  # page the security team's on-call (intaked/security/chain.py) at level N


class SecuritySettings(Section):
    """``[security]``: security incidents (category ``security_incident``)."""

    team: str = "security"  # the [teams.*] entry told of each new security incident
    notify_within: ClockDuration = "1h"  # notification of the authority after becoming aware
    levels: dict[str, SecurityLevelSettings] = Field(default_factory=dict)

    @field_validator("levels")
    @classmethod
    def _check_levels(cls, value: dict[str, SecurityLevelSettings]) -> dict[str, SecurityLevelSettings]:
        wrong = sorted(key for key in value if key not in {str(n) for n in LEVELS})
        if wrong:
            raise ValueError(f"security levels are 1, 2, 3 and 4 (got {', '.join(wrong)})")
        return value

    def level(self, number: int) -> SecurityLevelSettings:
        """The settings of level ``number`` (the defaults when not configured)."""
        return self.levels.get(str(number)) or SecurityLevelSettings()

    def contain_within(self, number: int) -> dt.timedelta:
        """The damage-control deadline of level ``number`` after becoming aware."""
        return duration_of(self.level(number).contain_within or DEFAULT_CONTAIN[number])

    @property
    def notify_delta(self) -> dt.timedelta:
        return duration_of(self.notify_within)
