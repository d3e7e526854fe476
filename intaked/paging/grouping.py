"""Major incidents: one outage pages once (issue 19).

While a P1/P2 page is live (``active``, or ``acknowledged`` while its ticket is open), a new
trusted report that the same routing rule marked (``tickets.suggested_by = "rule:<name>"``) within
``paging.group_window`` of the incident's latest report (and, with ``paging.group_by_site``, from
the same ``requester_site``) is *linked* to the paged ticket, the major incident, through
``tickets.major_incident_id`` instead of starting another page. The linked ticket keeps its own
number, thread and acknowledgement; events ``linked_to_incident`` on it and
``incident_report_linked`` on the major incident record the link.

The incident commander (``tickets.incident_commander`` if ``[people]`` knows them, else whoever
the page reached last) gets one SMS per ``paging.group_notify_interval`` of the page, sent at the
end of the interval: "N more reports linked to IT-..., latest: <subject>". Its outbox row's
idempotency key names the page and the interval, so several nodes queue it once; a row not sent
yet is rewritten with the newer count.

A hotline emergency call (menu 1) that no routing rule marked is linked likewise to the newest
live major incident a rule started, within the window (and site): a caller pressing 1 during a
paged outage is most likely reporting it (:func:`incident_for_emergency_call`;
``paging.group_hotline_emergencies = false`` turns it off). Without such an incident the
hotline's own emergency rules apply (intaked/hotline/emergencies.py).

Every function runs in the caller's transaction; :func:`lock_grouping` serialises the decisions
per rule on PostgreSQL (SQLite has one writer), so that two nodes filing reports of one outage
at once do not both page.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, and_, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from intaked.config import Settings
from intaked.outbound.outbox import enqueue
from intaked.paging.rows import page_event
from intaked.sla.targets import wall_time
from intaked.store.dialect import lock_name
from intaked.store.models import (
    outbox_table,
    page_attempt_table,
    page_table,
    ticket_event_table,
    ticket_table,
)

log = structlog.get_logger(__name__)

GROUPED_PURPOSE = "major_incident_more"
#: The event on the major incident for each report linked to it, and on the report.
LINKED_EVENT = "incident_report_linked"
LINKED_TO_EVENT = "linked_to_incident"
OPEN_STATUSES = ("new", "open", "pending")
#: ``tickets.suggested_by`` of a hotline emergency call (menu 1) no routing rule marked.
EMERGENCY_SOURCE = "hotline:emergency"
_SUBJECT_CHARS = 40

_t = ticket_table


@dataclass(frozen=True, slots=True)
class MajorIncident:
    """A live page's ticket that reports of the same outage are linked to."""

    ticket_id: int
    number: str
    page_id: int


def grouping_rule(suggested_by: str | None) -> str | None:
    """The routing rule a suggestion came from (``rule:<name>``), None for other sources."""
    return suggested_by if suggested_by and suggested_by.startswith("rule:") else None


def lock_grouping(conn: Connection, rule: str) -> None:
    """One grouping decision per rule at a time (PostgreSQL; SQLite has one writer)."""
    lock_name(conn, f"paging:group:{rule}")


def live_page() -> Any:
    """A page that still stands for its outage: active, or acknowledged while its ticket is open."""
    return or_(
        page_table.c.state == "active",
        and_(page_table.c.state == "acknowledged", _t.c.status.in_(OPEN_STATUSES)),
    )


def link_report(
    conn: Connection,
    ticket: Mapping[str, Any],
    incident_id: int,
    incident_number: str,
    *,
    why: str,
    actor: str,
    now: dt.datetime,
) -> None:
    """Link ``ticket`` (its row) to the major incident: the column and an event on each ticket."""
    conn.execute(
        update(_t).where(_t.c.id == ticket["id"]).values(major_incident_id=incident_id, updated_at=now)
    )
    page_event(conn, ticket["id"], LINKED_TO_EVENT, {"ticket": incident_number, "why": why}, now, actor)
    detail = {"ticket": ticket["number"], "subject": ticket["subject"], "why": why}
    page_event(conn, incident_id, LINKED_EVENT, detail, now, actor)


def incident_for_emergency_call(
    conn: Connection, settings: Settings, ticket: Mapping[str, Any], now: dt.datetime
) -> MajorIncident | None:
    """The major incident a hotline emergency call's ticket (menu 1, no rule of its own) joins:
    the newest live page of a report a routing rule marked, whose latest report came within
    ``paging.group_window`` (and from the caller's site, with ``paging.group_by_site``); None
    when ``paging.group_hotline_emergencies`` is off or there is none. A caller pressing 1 says
    nothing of what is wrong: during a paged outage the likeliest is that outage, and the
    commander sees the call in the grouped SMS (``intaked incident unlink`` undoes it)."""
    window = wall_time(settings.paging.group_window)
    if not settings.paging.group_hotline_emergencies or not window:
        return None
    return _newest_incident(conn, settings, ticket, _t.c.suggested_by.like("rule:%"), now - window)


def incident_to_join(
    conn: Connection, settings: Settings, ticket: Mapping[str, Any], now: dt.datetime
) -> MajorIncident | None:
    """The major incident the new ``ticket`` (its row) belongs to (module docstring), or None."""
    if ticket["suggested_by"] == EMERGENCY_SOURCE:
        return incident_for_emergency_call(conn, settings, ticket, now)
    rule = grouping_rule(ticket["suggested_by"])
    window = wall_time(settings.paging.group_window)
    if rule is None or not window:
        return None
    return _newest_incident(conn, settings, ticket, _t.c.suggested_by == rule, now - window)


def _newest_incident(
    conn: Connection, settings: Settings, ticket: Mapping[str, Any], source: Any, since: dt.datetime
) -> MajorIncident | None:
    """The newest live page whose ticket matches ``source``, is no linked report itself, and
    has a report (itself or one linked to it) filed since ``since``."""
    reports = aliased(_t)
    recent = exists().where(
        or_(reports.c.id == _t.c.id, reports.c.major_incident_id == _t.c.id),
        reports.c.id != ticket["id"],
        reports.c.created_at >= since,
    )
    query = (
        select(page_table.c.id, _t.c.id.label("ticket_id"), _t.c.number)
        .join(_t, _t.c.id == page_table.c.ticket_id)
        .where(live_page(), source, _t.c.major_incident_id.is_(None), _t.c.id != ticket["id"], recent)
        .order_by(page_table.c.id.desc())
        .limit(1)
    )
    if settings.paging.group_by_site:
        site = ticket["requester_site"]
        query = query.where(_t.c.requester_site.is_(None) if site is None else _t.c.requester_site == site)
    row = conn.execute(query).first()
    return None if row is None else MajorIncident(int(row.ticket_id), str(row.number), int(row.id))


def group_report(
    conn: Connection, settings: Settings, ticket_id: int, now: dt.datetime
) -> MajorIncident | None:
    """Link the new trusted report ``ticket_id`` to the major incident of its outage and queue the
    commander's grouped SMS; None (nothing done) when it belongs to none: it pages then."""
    ticket: Any = conn.execute(select(_t).where(_t.c.id == ticket_id)).mappings().one()
    source = ticket["suggested_by"]
    rule = source if source == EMERGENCY_SOURCE else grouping_rule(source)
    if rule is None:
        return None
    lock_grouping(conn, rule)
    incident = incident_to_join(conn, settings, ticket, now)
    if incident is None:
        return None
    link_report(conn, ticket, incident.ticket_id, incident.number, why=rule, actor="intaked", now=now)
    queue_grouped_sms(conn, settings, incident, str(ticket["subject"] or ""), now)
    log.warning(
        "report_linked_to_major_incident",
        ticket=ticket["number"],
        major_incident=incident.number,
        page=incident.page_id,
        rule=rule,
    )
    return incident


def commander_phone(conn: Connection, settings: Settings, incident: MajorIncident) -> str | None:
    """Where the grouped SMS goes: the incident commander's phone, else the page's latest target."""
    commander = conn.execute(select(_t.c.incident_commander).where(_t.c.id == incident.ticket_id)).scalar()
    person = settings.people.get(commander) if commander else None
    if person is not None:
        return person.phone
    attempts = page_attempt_table
    address = conn.execute(
        select(attempts.c.address)
        .where(attempts.c.page_id == incident.page_id, attempts.c.channel.in_(("sms", "call")))
        .order_by(attempts.c.id.desc())
        .limit(1)
    ).scalar()
    return None if address is None else str(address)


def grouped_sms(number: str, count: int, subject: str) -> str:
    """The short SMS to the commander about reports linked in one interval."""
    latest = subject if len(subject) <= _SUBJECT_CHARS else subject[: _SUBJECT_CHARS - 1] + "…"
    reports = "report" if count == 1 else "reports"
    return (
        f"[重大事件] {number} 另有 {count} 件通報併入，最新：{latest} / "
        f"{count} more {reports} linked to {number}, latest: {latest}"
    )


def queue_grouped_sms(
    conn: Connection, settings: Settings, incident: MajorIncident, subject: str, now: dt.datetime
) -> None:
    """Queue (or rewrite, while not sent) the SMS of the interval ``now`` falls in, due at its end."""
    to = commander_phone(conn, settings, incident)
    if to is None:
        log.warning("grouped_sms_nobody", major_incident=incident.number, page=incident.page_id)
        return
    started = conn.execute(
        select(page_table.c.started_at).where(page_table.c.id == incident.page_id)
    ).scalar_one()
    started = started if started.tzinfo else started.replace(tzinfo=dt.UTC)
    interval = wall_time(settings.paging.group_notify_interval) or dt.timedelta(minutes=5)
    index = max(0, (now - started) // interval)
    begins = started + index * interval
    count = conn.execute(
        select(func.count()).where(
            ticket_event_table.c.ticket_id == incident.ticket_id,
            ticket_event_table.c.kind == LINKED_EVENT,
            ticket_event_table.c.at >= begins,
        )
    ).scalar_one()
    payload = {"to": to, "body": grouped_sms(incident.number, int(count), subject)}
    key = f"{GROUPED_PURPOSE}:{incident.page_id}:{index}"
    row = {
        "kind": "sms",
        "purpose": GROUPED_PURPOSE,
        "idempotency_key": key,
        "ticket_id": incident.ticket_id,
        "recipient": to,
        "payload": payload,
    }
    mine = outbox_table.c.idempotency_key == key
    if enqueue(conn, [row], now):
        conn.execute(update(outbox_table).where(mine).values(next_attempt_at=begins + interval))
        return
    conn.execute(
        update(outbox_table)
        .where(mine, outbox_table.c.state == "pending")
        .values(recipient=to, payload=json.dumps(payload, ensure_ascii=False))
    )
