"""The schema of paging: ``[people.<name>]``, ``[oncall.<schedule>]`` (rotations), ``[teams.<name>]``
and ``[paging]`` (the escalation policies per priority)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from intaked.config.fields import E164, Duration, PersonName, Section, TimeZoneName, checked_by
from intaked.config.warroom import parse_war_room

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_SHIFT = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_SHIFT_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
#: The weekdays a rotation may hand off on (``handoff_weekday``), Monday first.
WEEKDAY_NAMES: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
#: A Monday: the default ``start`` of every rotation (its first shift starts there at handoff time).
DEFAULT_ROTATION_START = dt.date(2024, 1, 1)


def parse_shift(value: str) -> dt.timedelta:
    """The length of a rotation shift such as "1w", "1d" or "12h" (whole hours), else a ValueError."""
    match = _SHIFT.match(value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f'{value!r} is not a shift length such as "1w", "2w", "1d" or "12h"')
    return dt.timedelta(seconds=int(match.group(1)) * _SHIFT_UNITS[match.group(2)])


class PersonSettings(Section):
    """``[people.<name>]``: someone who can be paged, by SMS and voice call, or e-mail."""

    display_name: str = ""  # "" = the key
    phone: str
    email: str = ""
    sms: bool = True
    voice: bool = True
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "zh-TW"

    @field_validator("phone")
    @classmethod
    def _check_phone(cls, value: str) -> str:
        compact = re.sub(r"[\s()-]", "", value)
        if not E164.match(compact):
            raise ValueError(
                f"{value!r} is not an E.164 phone number (+, then 8 to 15 digits, e.g. +886912345678)"
            )
        return compact

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str) -> str:
        if value and ("@" not in value or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class OncallScheduleSettings(Section):
    """``[oncall.<schedule>]``: a rotation of people through one on-call role.

    The first person's first shift starts on ``start`` at ``handoff_time`` (local wall time in
    ``timezone``); every ``shift`` the next person in ``people`` takes over, and after the last
    the first again. The rotation is periodic in both directions, so it also answers for times
    before ``start``. Handoffs are computed in local wall time: across a daylight-saving change a
    weekly handoff stays at 09:00 local time.
    """

    timezone: TimeZoneName = "Asia/Taipei"
    people: Annotated[list[PersonName], Field(min_length=1)]
    handoff_time: str = "09:00"
    handoff_weekday: str = ""  # "" = the weekday of start
    shift: str = "1w"
    start: dt.date | None = None  # None = DEFAULT_ROTATION_START, moved to handoff_weekday if set

    @field_validator("handoff_time")
    @classmethod
    def _check_handoff_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f'{value!r} is not a time of day like "09:00"')
        return value

    @field_validator("handoff_weekday")
    @classmethod
    def _check_weekday(cls, value: str) -> str:
        if not value:
            return value
        for name in WEEKDAY_NAMES:
            if value.lower() in (name, name[:3]):
                return name
        raise ValueError(f"{value!r} is not a weekday (monday .. sunday)")

    @field_validator("shift")
    @classmethod
    def _check_shift(cls, value: str) -> str:
        parse_shift(value)
        return value

    @model_validator(mode="after")
    def _weekday_fits(self) -> OncallScheduleSettings:
        if not self.handoff_weekday:
            return self
        if self.shift_length % dt.timedelta(weeks=1):
            raise ValueError(
                f"handoff_weekday needs a shift of whole weeks (got {self.shift!r}); "
                "leave handoff_weekday out for shorter shifts"
            )
        if self.start is not None and self.start.weekday() != WEEKDAY_NAMES.index(self.handoff_weekday):
            raise ValueError(
                f"start {self.start} is a {WEEKDAY_NAMES[self.start.weekday()]}, "
                f"but handoff_weekday is {self.handoff_weekday}"
            )
        return self

    @property
    def shift_length(self) -> dt.timedelta:
        """``shift`` as a length of local wall time."""
        return parse_shift(self.shift)

    @property
    def first_handoff(self) -> dt.datetime:
        """The first shift's start as a naive local wall time (in ``timezone``)."""
        day = self.start or DEFAULT_ROTATION_START
        if self.start is None and self.handoff_weekday:
            day += dt.timedelta(days=(WEEKDAY_NAMES.index(self.handoff_weekday) - day.weekday()) % 7)
        hour, minute = (int(part) for part in self.handoff_time.split(":"))
        return dt.datetime.combine(day, dt.time(hour, minute))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class TeamSettings(Section):
    """``[teams.<name>]``: who is told about a ticket's deadlines, and (``notify_new``) about each
    new ticket routed to the team (intaked/tickets/team_notice.py), at the team's ``email``; who
    ``intaked incident convene`` pages for the team (intaked/paging/convene.py): whoever the
    ``oncall`` schedule names, on the channels of the first step of the paging ``policy`` (the
    key of a ``[paging.policies.<P>]``; SMS and call without one), or that step's targets when
    the team names no schedule. A security level that pages (``[security.levels.N] page``)
    pages the security team the same way, escalating through the rest of that policy
    (intaked/paging/policy.py ``freeze_policy``)."""

    email: str = ""
    lead_email: str = ""
    calendar: str = ""
    notify_new: bool = False
    oncall: str = ""
    policy: Literal["", "P1", "P2", "P3", "P4"] = ""

    @model_validator(mode="after")
    def _notice_has_an_address(self) -> TeamSettings:
        if self.notify_new and not self.email.strip():
            raise ValueError("notify_new = true needs the team's email (the address the notice goes to)")
        return self


PageChannel = Literal["sms", "call", "email"]


def _sms_and_call() -> list[PageChannel]:
    return ["sms", "call"]


class PageTargetSettings(Section):
    """One target of an escalation step: whoever an on-call schedule names, or a person."""

    oncall: str = ""
    person: str = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> PageTargetSettings:
        if bool(self.oncall) == bool(self.person):
            raise ValueError('give exactly one of oncall = "<schedule>" or person = "<name>"')
        return self


class PageStepSettings(Section):
    """``[[paging.policies.<P>.steps]]``: who is paged how, ``after`` the previous step."""

    after: Duration = "0m"
    targets: Annotated[list[PageTargetSettings], Field(min_length=1)]
    channels: Annotated[list[PageChannel], Field(min_length=1)] = Field(default_factory=_sms_and_call)


class PagePolicySettings(Section):
    """``[paging.policies.<P>]``: the escalation chain for one priority, frozen onto each page."""

    steps: Annotated[list[PageStepSettings], Field(min_length=1)]
    repeat: Annotated[int, Field(ge=1, le=10)] = 3
    give_up_after: Duration = "10m"


class PagingSettings(Section):
    """``[paging]``: paging the Quick Response Center for P1/P2, escalated until someone acknowledges."""

    policies: dict[Literal["P1", "P2", "P3", "P4"], PagePolicySettings] = Field(default_factory=dict)
    check_seconds: Annotated[float, Field(gt=0)] = 1.0
    fallback_after: Duration = "2m"
    fallback_email: str = ""
    call_retries: Annotated[int, Field(ge=0, le=5)] = 1
    call_retry_after: Duration = "1m"
    gather_seconds: Annotated[int, Field(ge=3, le=60)] = 8
    group_window: Duration = "30m"
    group_by_site: bool = False
    #: A hotline emergency call (menu 1) joins the major incident being paged (intaked/paging/grouping.py).
    group_hotline_emergencies: bool = True
    group_notify_interval: Duration = "5m"
    #: The major-incident bridge named in every P1/P2 page (intaked/config/warroom.py); "" = none.
    war_room: Annotated[str, checked_by(parse_war_room, optional=True)] = ""
    #: The QRC's team name: the team of the RCA follow-ups (intaked/tickets/rca.py).
    qrc_team: str = "qrc"
    #: When an RCA follow-up is due after its incident was resolved, on the QRC team's calendar.
    rca_due: Duration = "5 working days"
