"""The schema of the service promises: ``[tickets]`` (numbering), ``[calendars.<name>]`` (when the
working clock runs), ``[sla]`` (targets per priority), ``[triage]`` and ``[lifecycle]``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from intaked.config.fields import Duration, Section, TimeZoneName, check_duration


class TicketSettings(Section):
    """``[tickets]``: how tickets are numbered."""

    number_prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$")] = "IT"
    timezone: TimeZoneName = "Asia/Taipei"


_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def _iso_day(value: str) -> str:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _monday_to_friday() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


class CalendarSettings(Section):
    """``[calendars.<name>]``: when the working clock runs."""

    timezone: TimeZoneName = "Asia/Taipei"
    working_days: list[Weekday] = Field(default_factory=_monday_to_friday)
    hours: list[str] = Field(default_factory=lambda: ["08:30-12:00", "13:00-17:30"])
    country: str = "TW"
    subdivision: str = ""
    day_length: str = ""  # "" = the sum of the hours
    extra_holidays: dict[Annotated[str, AfterValidator(_iso_day)], str] = Field(default_factory=dict)
    extra_workdays: dict[Annotated[str, AfterValidator(_iso_day)], str] = Field(default_factory=dict)

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('at least one working period is needed, e.g. "08:30-17:30"')
        previous = ""
        for period in value:
            if not _HOURS.match(period):
                raise ValueError(f'{period!r} is not a working period like "08:30-12:00"')
            start, end = period.split("-")
            if end <= start or start < previous:
                raise ValueError(f"{period!r}: periods must be in order and end after they start")
            previous = end
        return value

    @field_validator("day_length")
    @classmethod
    def _check_day_length(cls, value: str) -> str:
        return check_duration(value) if value else value


class TargetSettings(Section):
    """``[sla.P1]`` .. ``[sla.P4]``: the response and resolution targets of one priority."""

    response: Duration
    response_clock: Literal["24x7", "working"]
    resolution: Duration
    resolution_clock: Literal["24x7", "working"]


def _default_targets() -> dict[str, TargetSettings]:
    return {
        "P1": TargetSettings(response="15m", response_clock="24x7", resolution="4h", resolution_clock="24x7"),
        "P2": TargetSettings(
            response="1h", response_clock="24x7", resolution="8h", resolution_clock="working"
        ),
        "P3": TargetSettings(
            response="4h", response_clock="working", resolution="3d", resolution_clock="working"
        ),
        "P4": TargetSettings(
            response="8h", response_clock="working", resolution="5d", resolution_clock="working"
        ),
    }


class SlaSettings(Section):
    """``[sla]``: the promises per priority, when to warn, and how often to look."""

    calendar: str = "default"
    warn_at: Annotated[float, Field(gt=0, lt=1)] = 0.75
    pending_pauses_resolution: bool = True
    check_seconds: Annotated[float, Field(gt=0)] = 5.0
    P1: TargetSettings = Field(default_factory=lambda: _default_targets()["P1"])
    P2: TargetSettings = Field(default_factory=lambda: _default_targets()["P2"])
    P3: TargetSettings = Field(default_factory=lambda: _default_targets()["P3"])
    P4: TargetSettings = Field(default_factory=lambda: _default_targets()["P4"])


class TriageSettings(Section):
    """``[triage]``: how soon a person must set the priority of a new ticket, and who does it."""

    within: Duration = "15m"
    clock: Literal["24x7", "working"] = "24x7"
    team: str = "field_service"


class LifecycleSettings(Section):
    """``[lifecycle]``: resolved tickets close by themselves."""

    auto_close_after: Duration = "3 working days"
    auto_close_clock: Literal["24x7", "working"] = "working"
    sweep_interval: Duration = "5m"
