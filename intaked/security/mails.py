"""The mails of security incidents: the notice to the security team of a new incident, the
warnings and breaches of its clocks, and the internal reporting chain's mails. Each is an outbox
row under an idempotency key, so a pass run twice queues nothing twice; and each comes with its
``ticket_events`` row (built by ``intaked.sla.tracker.event``: this package sits below
``tickets/``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from intaked.config import Settings
from intaked.outbound.compose import new_message_id
from intaked.outbound.notices import notice_mail
from intaked.outbound.outbox import enqueue
from intaked.sla.tracker import event
from intaked.store.models import ticket_event_table

TEAM_PURPOSE = "security_team"


def mail(
    settings: Settings, ticket_id: int, to: str, subject: str, text: str, *, purpose: str, key: str
) -> dict[str, Any]:
    """The outbox row of one security mail."""
    return notice_mail(
        settings,
        to,
        {"subject": subject, "text": text},
        purpose=purpose,
        key=key[:255],
        ticket_id=ticket_id,
        message_id=new_message_id(settings.outbound_mail.from_address, purpose.replace("_", "-")),
    )


def local(settings: Settings, instant: dt.datetime | None) -> str:
    """``instant`` in ``tickets.timezone``, for people to read."""
    from zoneinfo import ZoneInfo

    if instant is None:
        return "-"
    return instant.astimezone(ZoneInfo(settings.tickets.timezone)).strftime("%Y-%m-%d %H:%M %Z")


def team_notice(
    conn: Connection, settings: Settings, ticket: Mapping[str, Any], ticket_id: int, now: dt.datetime
) -> int:
    """Queue the notice of a new security incident to ``[teams.<security.team>]``'s ``email`` (once
    per ticket and address) with its ``security_team_notified`` event; how many were new. An
    address that ``hotline.security_notify`` already gets for a hotline call is not mailed twice."""
    team = settings.teams.get(settings.security.team)
    address = (team.email if team else "").strip().lower()
    if not address or ticket.get("status") == "spam":
        return 0
    if ticket.get("channel") == "phone" and address == settings.hotline.security_notify.strip().lower():
        return 0
    number = ticket.get("number")
    text = (
        f"新的資通安全事件 / New security incident\n\n"
        f"案件 / Ticket: {number}\n"
        f"主旨 / Subject: {ticket.get('subject') or '-'}\n"
        f"通報人 / Reported by: {ticket.get('requester_name') or '-'} "
        f"{ticket.get('requester_email') or ticket.get('requester_phone') or ''}\n"
        f"管道 / Channel: {ticket.get('channel')}\n"
        f"收到 / Received: {local(settings, ticket.get('created_at') or now)}\n\n"
        f"知悉後 {settings.security.notify_within} 內須通報主管機關 / the authority must be notified "
        f"within {settings.security.notify_within} of becoming aware.\n"
        f"請判定等級 / Set the level: intaked security level {number} --level 1..4\n"
    )
    row = mail(
        settings,
        ticket_id,
        address,
        f"[{number}] 資通安全事件 / Security incident: {ticket.get('subject') or ''}",
        text,
        purpose=TEAM_PURPOSE,
        key=f"{TEAM_PURPOSE}:{ticket_id}:{address}",
    )
    new = enqueue(conn, [row], now)
    if new:
        detail = {"to": address, "team": settings.security.team}
        conn.execute(ticket_event_table.insert(), [event(ticket_id, "security_team_notified", detail, now)])
    return new


def recipients(settings: Settings, names: list[str]) -> tuple[list[str], list[str]]:
    """The addresses of a chain's ``notify`` list (addresses, ``[people.*]`` names, ``[teams.*]``
    names: lead then team), and the names that are none of these."""
    found: list[str] = []
    unknown: list[str] = []
    for name in names:
        if "@" in name:
            found.append(name.strip().lower())
        elif name in settings.people and settings.people[name].email:
            found.append(settings.people[name].email.lower())
        elif name in settings.teams:
            team = settings.teams[name]
            found.extend(a.lower() for a in (team.lead_email, team.email) if a)
        else:
            unknown.append(name)
    return list(dict.fromkeys(found)), unknown
