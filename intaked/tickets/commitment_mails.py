"""The mails a change of commitment sends, as outbox rows for the caller's transaction: the new
time to the requester (template ``extension``, threaded into their ticket) and the escalation
to a team's lead or a person (template ``escalation``). Times are shown in ``tickets.timezone``,
in Traditional Chinese and in English."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from intaked.config import Settings
from intaked.outbound.compose import new_message_id, render_notice
from intaked.outbound.notices import notice_mail, requester_notice_mail
from intaked.routing.directory import directory_for
from intaked.store.models import message_table
from intaked.tickets.lifecycle import InvalidChange

_WEEKDAYS_ZH = "一二三四五六日"
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TICKET_KEYS = ("number", "subject", "status", "priority", "requester_email", "requester_name")


def time_zh(value: dt.datetime, tz: dt.tzinfo) -> str:
    """``2027年1月5日（週二）17:00``: ``value`` in ``tz``, as a Taiwanese reader writes it."""
    local = value.astimezone(tz)
    weekday = _WEEKDAYS_ZH[local.weekday()]
    return f"{local.year}年{local.month}月{local.day}日（週{weekday}）{local:%H:%M}"


def time_en(value: dt.datetime, tz: dt.tzinfo) -> str:
    """``Tue 5 Jan 2027, 17:00``: ``value`` in ``tz`` (the same whatever the process's locale)."""
    local = value.astimezone(tz)
    weekday, month = _WEEKDAYS_EN[local.weekday()], _MONTHS_EN[local.month - 1]
    return f"{weekday} {local.day} {month} {local.year}, {local:%H:%M}"


def _times(settings: Settings, prefix: str, value: dt.datetime | None) -> dict[str, str]:
    """The template variables ``<prefix>_zh`` and ``<prefix>_en`` (empty when ``value`` is None)."""
    tz = ZoneInfo(settings.tickets.timezone)
    if value is None:
        return {f"{prefix}_zh": "", f"{prefix}_en": ""}
    return {f"{prefix}_zh": time_zh(value, tz), f"{prefix}_en": time_en(value, tz)}


@dataclass(frozen=True)
class Recipient:
    """Who an escalation is mailed to: its name, address and role (``team lead``, ``team``,
    ``person``, ``address``)."""

    name: str
    address: str
    role: str

    @classmethod
    def named(cls, settings: Settings, to: str) -> Recipient:
        """``to``: a ``[teams.<name>]`` (its ``lead_email``, else its ``email``), a
        ``[people.<name>]`` (their ``email``), a name in the employee directory (``[directory]``)
        or an e-mail address; else :class:`InvalidChange`."""
        team = settings.teams.get(to)
        if team is not None:
            if not (team.lead_email or team.email):
                raise InvalidChange(f"team {to!r} has no lead_email or email to tell")
            return cls(to, team.lead_email or team.email, "team lead" if team.lead_email else "team")
        person = settings.people.get(to)
        if person is not None:
            if not person.email:
                raise InvalidChange(f"person {to!r} has no email to tell")
            return cls(to, person.email, "person")
        listed = [p for p in directory_for(settings).people() if p.name.casefold() == to.casefold()]
        if len(listed) == 1:
            return cls(to, listed[0].email, "person")
        if "@" in to and not any(c.isspace() for c in to):
            return cls(to, to, "address")
        teams = ", ".join(sorted(settings.teams)) or "none"
        people = ", ".join(sorted(settings.people)) or "none"
        raise InvalidChange(f"no team or person named {to!r} (teams: {teams}; people: {people})")


def _last_message_id(conn: Connection, ticket_id: int) -> str | None:
    """The Message-ID of the ticket's last message, for the requester's notice to answer."""
    m = message_table
    return conn.execute(
        select(m.c.header_message_id)
        .where(m.c.ticket_id == ticket_id, m.c.header_message_id.is_not(None))
        .order_by(m.c.id.desc())
        .limit(1)
    ).scalar()


def extension_notice(
    conn: Connection, settings: Settings, row: Any, until: dt.datetime, *, reason: str, key: str
) -> list[dict[str, Any]]:
    """The mail telling the requester the new commitment ``until`` (none without an address)."""
    address = (row["requester_email"] or "").lower()
    if not address:
        return []
    context = {
        "ticket": {k: row[k] for k in _TICKET_KEYS},
        "requester_name": row["requester_name"],
        "reason": reason,
        **_times(settings, "until", until),
        **_times(settings, "previous", row["commitment_at"]),
    }
    rendered = render_notice("extension", context, settings.acknowledgements.templates_dir)
    mail = requester_notice_mail(
        settings,
        address,
        row["requester_name"],
        rendered,
        purpose="extension_notice",
        key=key[:255],
        ticket_id=row["id"],
        message_id=new_message_id(settings.outbound_mail.from_address, "extension"),
        in_reply_to=_last_message_id(conn, row["id"]),
    )
    return [mail]


def escalation_notice(
    settings: Settings,
    row: Any,
    recipient: Recipient,
    *,
    reason: str,
    by: str,
    until: dt.datetime | None,
    count: int,
) -> list[dict[str, Any]]:
    """The mail asking ``recipient`` to step in (the ``count``-th escalation of the ticket)."""
    context = {
        "ticket": {k: row[k] for k in _TICKET_KEYS},
        "to": recipient.name,
        "reason": reason,
        "by": by,
        "count": count,
        **_times(settings, "commitment", until or row["commitment_at"]),
    }
    rendered = render_notice("escalation", context, settings.acknowledgements.templates_dir)
    mail = notice_mail(
        settings,
        recipient.address,
        rendered,
        purpose="escalation_notice",
        key=f"escalation_notice:{row['id']}:{count}"[:255],
        ticket_id=row["id"],
        message_id=new_message_id(settings.outbound_mail.from_address, "escalation"),
    )
    return [mail]
