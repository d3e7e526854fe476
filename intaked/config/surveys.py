"""The schema of ``[surveys]``: the one-question satisfaction survey a requester gets when their
ticket closes (docs/service-levels.md, "Satisfaction surveys"): whether it is on, which share of
the closed tickets gets one, how long an answer counts, and by which channels it goes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from intaked.config.durations import parse_duration
from intaked.config.fields import Section

SurveyChannel = Literal["mail", "sms"]


def _calendar_duration(value: str) -> str:
    """``value`` if it is a plain duration ("14d", "36h"): the answer window counts calendar time."""
    if "working" in value.lower() or "business" in value.lower():
        raise ValueError(f"{value!r}: the answer window counts calendar time; write e.g. 14d")
    span, days = parse_duration(value)
    if not days and not span:
        raise ValueError(f"{value!r} is no time at all: write e.g. 14d")
    return value


def _both_channels() -> list[SurveyChannel]:
    return ["mail", "sms"]


class SurveySettings(Section):
    """``[surveys]``: the satisfaction survey sent when a ticket closes."""

    enabled: bool = True
    # The share of closed tickets surveyed, 0..1; the same ticket number is always in or out.
    sample_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    # How long after the survey an answer counts as the ticket's score (calendar time).
    answer_within: Annotated[str, AfterValidator(_calendar_duration)] = "14d"
    # "mail" for requesters with an e-mail address, "sms" for hotline callers from a mobile
    # (hotline.sms_ack_prefixes, +8869 by default; needs [twilio]).
    channels: Annotated[list[SurveyChannel], Field(min_length=1)] = Field(default_factory=_both_channels)

    @property
    def window_seconds(self) -> float:
        """``answer_within`` in seconds."""
        span, days = parse_duration(self.answer_within)
        return days * 86_400 + span.total_seconds()
