"""The schema of ``[reports]``: the service-level reports intaked mails on its own, weekly (an ISO
week, Monday 00:00 to Monday 00:00 in ``tickets.timezone``) and monthly (a calendar month), each to
its recipients, grouped ``by`` team, handler or priority, once the period is over and its send time
of day (local) has come: the Monday after the week, the 1st after the month
(intaked/reports/schedule.py). A report without recipients is not sent."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from intaked.config.fields import MailAddress, Section, checked_by, one_or_many

_TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")

#: What a report's rows are: one per team, per handler or per priority.
ReportGrouping = Literal["team", "handler", "priority"]


def parse_time_of_day(value: str) -> tuple[int, int]:
    """``"08:00"`` as (8, 0); a ValueError for anything but a 24-hour ``HH:MM``."""
    match = _TIME_OF_DAY.match(value)
    if not match:
        raise ValueError(f'{value!r} is not a time of day such as "08:00" (24-hour HH:MM)')
    return int(match[1]), int(match[2])


class ScheduledReportSettings(Section):
    """``[reports.weekly]`` / ``[reports.monthly]``: one scheduled report."""

    recipients: Annotated[list[MailAddress], BeforeValidator(one_or_many)] = Field(default_factory=list)
    by: ReportGrouping = "team"
    send_at: Annotated[str, checked_by(parse_time_of_day)] = "08:00"  # local, on the first day after

    @property
    def enabled(self) -> bool:
        return bool(self.recipients)

    @property
    def send_time(self) -> tuple[int, int]:
        return parse_time_of_day(self.send_at)


class ReportsSettings(Section):
    """``[reports]``: the scheduled reports by mail, and how often a node looks whether one is due."""

    weekly: ScheduledReportSettings = ScheduledReportSettings()
    monthly: ScheduledReportSettings = ScheduledReportSettings()
    check_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300.0

    @property
    def enabled(self) -> bool:
        return self.weekly.enabled or self.monthly.enabled
