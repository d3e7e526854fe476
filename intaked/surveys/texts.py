"""What a survey and its clarification say: mail from the ``survey`` and ``survey_clarify``
templates (intaked/templates/, Traditional Chinese then English), and the SMS texts (Chinese then
English; a survey SMS is two UCS-2 segments at most)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from intaked.config import Settings
from intaked.outbound.compose import render_notice

#: Words of a survey mail's subject (the ``survey`` templates): with the ticket's tag, they
#: recognise an answer whose mail program dropped In-Reply-To and References.
SUBJECT_MARKERS = ("滿意度調查", "satisfaction survey")


def _context(ticket: Any) -> dict[str, Any]:
    return {
        "ticket": {"number": ticket["number"], "subject": ticket["subject"]},
        "requester_name": ticket["requester_name"],
    }


def survey_mail(settings: Settings, ticket: Any, expires_at: dt.datetime) -> dict[str, str]:
    """Subject and text of the survey mail for ``ticket``, answerable until ``expires_at``."""
    tz = ZoneInfo(settings.acknowledgements.timezone)
    context = {**_context(ticket), "answer_by_local": expires_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")}
    return render_notice("survey", context, settings.acknowledgements.templates_dir)


def clarify_mail(settings: Settings, ticket: Any) -> dict[str, str]:
    """Subject and text of the one clarifying answer to a reply without a score."""
    return render_notice("survey_clarify", _context(ticket), settings.acknowledgements.templates_dir)


def survey_sms(number: str, code: str) -> str:
    """The survey SMS: the ticket, the scale and the code to answer with."""
    return (
        f"IT 服務台：案件 {number} 已結案，請回覆滿意度 1-5 分（5 最滿意）及代碼，例如「5 {code}」。"
        f"Rate us 1-5, reply e.g. 5 {code}"
    )


def clarify_sms(code: str) -> str:
    """The one clarifying SMS to an answer without a score 1-5."""
    return f"請回覆 1-5 分及代碼，例如「4 {code}」。Please reply a score 1-5 and the code, e.g. 4 {code}"


def has_marker(subject: str) -> bool:
    """Whether ``subject`` carries the survey's words."""
    lowered = subject.lower()
    return any(marker in lowered for marker in SUBJECT_MARKERS)
