"""Hotline calls as tickets: the core functions, each run inside the caller's transaction (sync,
on a database thread), used by the webhooks (intaked/twilio/hotline_webhooks.py) and reconciliation.

- :func:`record_call`: a call arrived. Idempotent on the CallSid. A call from a number whose open
  ``phone`` ticket had a call within ``hotline.repeat_window`` joins that ticket (重覆報修: the
  call is still its own ``calls`` and ``messages`` row, event ``call_added``); any other call files
  a new ticket (status ``new``, its triage deadline, the directory's name, e-mail, department
  and site for the caller id, event ``created``) and acknowledges it to the caller
  (intaked/hotline/acks.py).
- :func:`set_menu_choice`: the key pressed at the menu (1 emergency, 2 other, 3 security; none:
  2) routes the ticket (intaked/routing/decide.py ``route_call``); the emergency choice is a
  trusted P1 suggestion that pages QRC in the same transaction, marked unconfirmed, unless it
  joins an emergency already being paged (intaked/hotline/emergencies.py); the security
  choice sets category ``security_incident``, team ``hotline.security_team`` and tells
  ``hotline.security_notify`` by mail.
- The call's progress afterwards (voicemail, speech, status, missed): intaked/hotline/progress.py.

Filing the ticket itself (number, routing columns, deadlines, insert, ``created``/``routed``
events, acknowledgement events, the trusted page) is intaked/tickets/filing.py's, shared with mail.

Each call is one ``messages`` row of its ticket (channel ``phone``, ``header_message_id`` and
``dedupe_key`` ``call:<CallSid>``) whose text is rewritten as the call progresses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, insert, select, update

from intaked.config import Settings
from intaked.hotline.caller_acks import queue_caller_acks
from intaked.hotline.callmessage import (
    MENU,
    HeldCall,
    UnknownCall,
    call_row,
    call_subject,
    first_call_id,
    refresh_message,
)
from intaked.hotline.emergencies import emergency_to_join, join_emergency, lock_emergencies
from intaked.hotline.repeats import joinable_ticket
from intaked.hotline.security import queue_security_notice
from intaked.paging.grouping import group_report
from intaked.paging.policy import PAGED_PRIORITIES
from intaked.routing.decide import RoutedReport, route_call
from intaked.security.mails import team_notice
from intaked.sla.context import current_context
from intaked.sla.deadlines import compute
from intaked.store.dialect import lock_name, locked
from intaked.store.models import call_table, message_table, ticket_table
from intaked.tickets.events import (
    TicketEvent,
    clean_text,
    event,
    events_from_acks,
    record_events,
    to_json,
)
from intaked.tickets.filing import (
    apply_routing,
    created_event,
    open_tickets,
    page_trusted,
    routed_events,
    ticket_numbers,
    ticket_row,
)

log = structlog.get_logger(__name__)

DEFAULT_CHOICE = "2"
SECURITY_CHOICE = "3"
SECURITY_CATEGORY = "security_incident"
_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What Twilio says of a call when it arrives (webhook) or when it is listed (reconciliation)."""

    call_sid: str
    from_number: str
    to_number: str
    caller_name: str | None
    started_at: dt.datetime
    status: str | None
    source: str = "webhook"


@dataclass(frozen=True, slots=True)
class FiledCall:
    """Where a call went: its ``calls`` row and ticket; ``joined`` an open ticket of the same
    caller instead of filing one; ``created`` is False when the CallSid was already recorded."""

    call_id: int
    ticket_id: int
    ticket_number: str
    joined: bool
    created: bool


@dataclass(frozen=True, slots=True)
class MenuOutcome:
    """What the menu choice did to the ticket."""

    ticket_id: int
    ticket_number: str
    choice: str
    joined: bool
    emergency: bool
    paged: bool


def _lock_caller(conn: Connection, from_number: str) -> None:
    """Serialise the calls of one caller id (PostgreSQL; SQLite has a single writer): the same
    CallSid twice, or two calls racing to file a ticket, see each other's committed rows."""
    lock_name(conn, f"hotline:{from_number}")


def _ticket(conn: Connection, ticket_id: int, *, lock: bool = False) -> Any:
    query = select(ticket_table).where(ticket_table.c.id == ticket_id)
    if lock:
        query = locked(conn, query)  # a person's triage cannot slip between read and write
    return conn.execute(query).mappings().one()


def record_call(conn: Connection, settings: Settings, facts: CallFacts, now: dt.datetime) -> FiledCall:
    """Record a call to the hotline: join the caller's recent open phone ticket or file a new
    one (see the module's docstring). A CallSid already recorded files nothing."""
    bound = log.bind(call_sid=facts.call_sid)
    _lock_caller(conn, facts.from_number)
    known = call_row(conn, facts.call_sid)
    if known is not None:
        ticket = _ticket(conn, known["ticket_id"])
        joined = first_call_id(conn, known["ticket_id"]) != known["id"]
        return FiledCall(int(known["id"]), int(ticket["id"]), str(ticket["number"]), joined, False)

    joinable = joinable_ticket(conn, settings, facts.from_number, facts.started_at)
    if joinable is not None:
        ticket_id, number = joinable
        conn.execute(update(ticket_table).where(ticket_table.c.id == ticket_id).values(updated_at=now))
        call_id = _insert_call(conn, settings, facts, ticket_id, now)
        after = {"from": facts.from_number, "to": facts.to_number, **_via(facts)}
        record_events(conn, [event(ticket_id, "call_added", now, after=after)])
        bound.info("message_added", ticket=number, channel="phone")  # a repeat call (重覆報修)
    else:
        ticket_id, number, report = _file_ticket(conn, settings, facts, now)
        call_id = _insert_call(conn, settings, facts, ticket_id, now)
        record_events(conn, _filed_events(conn, settings, facts, ticket_id, report, now))
        bound.info("ticket_created", ticket=number, channel="phone", source=facts.source)
    return FiledCall(call_id, ticket_id, number, joinable is not None, True)


def _via(facts: CallFacts) -> dict[str, Any]:
    return {"via": "twilio", "call_sid": facts.call_sid, "message_id": f"call:{facts.call_sid}"}


def _insert_call(
    conn: Connection, settings: Settings, facts: CallFacts, ticket_id: int, now: dt.datetime
) -> int:
    """The call's ``messages`` and ``calls`` rows on ``ticket_id``; the ``calls`` row's id."""
    message_id = conn.execute(
        insert(message_table)
        .values(
            ticket_id=ticket_id,
            direction="in",
            channel="phone",
            sender=facts.from_number,
            recipients=to_json([facts.to_number]),
            subject=call_subject(facts.from_number, None, "in_progress"),
            body_text="",
            header_message_id=f"call:{facts.call_sid}",
            dedupe_key=f"call:{facts.call_sid}",
            sent_at=facts.started_at,
            created_at=now,
        )
        .returning(message_table.c.id)
    ).scalar_one()
    call_id = conn.execute(
        insert(call_table)
        .values(
            call_sid=facts.call_sid,
            ticket_id=ticket_id,
            message_id=message_id,
            from_number=facts.from_number,
            to_number=facts.to_number,
            caller_name=clean_text(facts.caller_name) or None,
            twilio_status=facts.status,
            outcome="in_progress",
            started_at=facts.started_at,
            source=facts.source,
            created_at=now,
            updated_at=now,
        )
        .returning(call_table.c.id)
    ).scalar_one()
    refresh_message(conn, settings, facts.call_sid)
    return int(call_id)


def _filed_events(
    conn: Connection,
    settings: Settings,
    facts: CallFacts,
    ticket_id: int,
    report: RoutedReport,
    now: dt.datetime,
) -> list[TicketEvent]:
    """A new phone ticket's ``created`` and ``routed`` events, and its acknowledgements' (queued here)."""
    ticket = _ticket(conn, ticket_id)
    events = [created_event(ticket_id, ticket, now, requester_phone=facts.from_number, **_via(facts))]
    events += routed_events(ticket_id, report, now)
    acks = queue_caller_acks(
        conn, settings, ticket, caller=facts.from_number, received_at=facts.started_at, now=now
    )
    return events + events_from_acks(acks, now)


def _file_ticket(
    conn: Connection, settings: Settings, facts: CallFacts, now: dt.datetime
) -> tuple[int, str, RoutedReport]:
    """A new phone ticket for the call, routed (no menu choice yet) and with its triage deadline
    (intaked/tickets/filing.py, as for mail)."""
    (number,) = ticket_numbers(conn, settings, [facts.started_at])
    report = route_call(settings, facts.from_number or None, None, recipient=facts.to_number)
    person = report.person
    row = ticket_row(
        number,
        "phone",
        call_subject(facts.from_number, None, "in_progress"),
        now,
        requester_email=(person.email.lower() or None) if person else None,
        callback_requested=False,
    )
    apply_routing(row, report, clean_text(facts.caller_name) or None, facts.from_number or None)
    if person and person.name:
        row["requester_name"] = clean_text(person.name)  # the directory knows better than caller id
    (ticket_id,) = open_tickets(conn, settings, [row])
    return ticket_id, number, report


def normalise_choice(digit: str | None) -> str:
    """The menu key as stored: 1, 2 or 3; no key, or any other key, counts as 2 (other)."""
    digit = (digit or "").strip()
    return digit if digit in MENU else DEFAULT_CHOICE


def set_menu_choice(
    conn: Connection, settings: Settings, call_sid: str, digit: str | None, now: dt.datetime
) -> MenuOutcome:
    """Store the menu choice of ``call_sid`` and route its ticket (see the module's docstring).
    The first choice of a call counts; a replay changes nothing. Raises :class:`UnknownCall`."""
    emergency_key = settings.trust.hotline_emergency_choice
    if normalise_choice(digit) == emergency_key:
        lock_emergencies(conn)  # before the rows: see intaked/hotline/emergencies.py
    call = call_row(conn, call_sid, lock=True)
    if call is None:
        raise UnknownCall(call_sid)
    ticket = _ticket(conn, call["ticket_id"], lock=True)
    ticket_id = int(ticket["id"])
    own = first_call_id(conn, ticket_id) == call["id"]
    if call["menu_choice"] is not None:  # a replay: say the same, change nothing
        choice, paged = call["menu_choice"], _has_page(conn, ticket_id)
        return MenuOutcome(ticket_id, str(ticket["number"]), choice, not own, choice == emergency_key, paged)
    choice = normalise_choice(digit)
    conn.execute(
        update(call_table).where(call_table.c.id == call["id"]).values(menu_choice=choice, updated_at=now)
    )
    report = route_call(settings, call["from_number"] or None, choice, recipient=call["to_number"])
    security = choice == SECURITY_CHOICE
    pressed = {"call_sid": call_sid, "choice": choice, "pressed": digit or None, "meaning": MENU[choice][1]}
    events = [event(ticket_id, "menu_choice", now, detail=pressed)]
    suggested = report.result.suggested_priority
    more_urgent = _RANK.get(suggested or "", 99) < _RANK.get(ticket["suggested_priority"] or "", 99)
    paged = False
    held = HeldCall(conn, call, ticket, now)
    if ticket["priority"] is None and (own or more_urgent or security):
        trusted = _route_ticket(held, settings, report, choice, own)
        detail = report.event_detail()
        if security:
            detail.update(category=SECURITY_CATEGORY, team=settings.hotline.security_team)
        events.append(event(ticket_id, "routed", now, detail=detail))
        if trusted:
            paged = _page_choice(held, settings, report, choice)
    if security and settings.hotline.security_notify:
        events.append(queue_security_notice(held, settings))
    if security:  # the security team's notice, once per ticket (intaked/security/mails.py)
        team_notice(conn, settings, {**ticket, "category": SECURITY_CATEGORY}, ticket_id, now)
    record_events(conn, events)
    refresh_message(conn, settings, call_sid)
    log.info("hotline_menu_choice", call_sid=call_sid, ticket=ticket["number"], choice=choice, paged=paged)
    return MenuOutcome(ticket_id, str(ticket["number"]), choice, not own, choice == emergency_key, paged)


def _route_ticket(held: HeldCall, settings: Settings, report: RoutedReport, choice: str, own: bool) -> bool:
    """Set the routing of the menu choice on the ticket (a repeat call only adds urgency; the
    security choice sets its category and team), with new deadlines when the team changed.
    Whether the ticket's suggestion is now trusted."""
    conn, call, ticket, now = held.conn, held.call, held.ticket, held.now
    values: dict[str, Any] = {
        "category": report.result.category,
        "team": report.result.team,
        "suggested_priority": report.result.suggested_priority,
        "suggested_by": report.suggested_by,
        "suggestion_trusted": report.suggestion_trusted,
        "updated_at": now,
    }
    if not own:  # a repeat call only adds urgency: keep what the first call routed
        values = {k: v for k, v in values.items() if v is not None or k == "updated_at"}
    if choice == SECURITY_CHOICE:
        values["category"] = SECURITY_CATEGORY
        values["team"] = settings.hotline.security_team
    if own:
        values["subject"] = call_subject(call["from_number"], choice, "in_progress")
    if values.get("team", ticket["team"]) != ticket["team"]:
        deadlines = compute(current_context(conn, settings), {**ticket, **values})
        values.update(deadlines.columns())
    conn.execute(update(ticket_table).where(ticket_table.c.id == ticket["id"]).values(**values))
    return bool(values.get("suggestion_trusted"))


def _page_choice(held: HeldCall, settings: Settings, report: RoutedReport, choice: str) -> bool:
    """A trusted P1/P2 from the menu pages QRC (intaked/tickets/filing.py), unless it is linked to
    the major incident being paged or joins an emergency already being paged
    (intaked/hotline/emergencies.py). Whether someone is paged."""
    suggested = report.result.suggested_priority
    if suggested not in PAGED_PRIORITIES or suggested is None:
        return False
    conn, ticket_id = held.conn, int(held.ticket["id"])
    if choice == settings.trust.hotline_emergency_choice:
        if group_report(conn, settings, ticket_id, held.now) is not None:
            return True  # a report of the outage being paged: linked to it (intaked/paging/grouping.py)
        joins = emergency_to_join(held, settings)
        if joins is not None:  # a repeat or a flood: the QRC is told, not paged again
            join_emergency(held, joins)
            return True
    page_id = page_trusted(conn, settings, ticket_id, suggested, report.suggested_by or "hotline", held.now)
    return page_id is not None or _has_page(conn, ticket_id)


def _has_page(conn: Connection, ticket_id: int) -> bool:
    """The ticket has a page, or was linked to a major incident being paged (the QRC knows)."""
    from intaked.store.models import page_table, ticket_table

    if conn.execute(select(page_table.c.id).where(page_table.c.ticket_id == ticket_id)).first() is not None:
        return True
    linked = select(ticket_table.c.major_incident_id).where(ticket_table.c.id == ticket_id)
    return conn.execute(linked).scalar() is not None


def desk_available(conn: Connection, settings: Settings, now: dt.datetime) -> bool:
    """The desk is rung first: ``hotline.desk_number`` is set and ``now`` is working time of
    ``hotline.desk_calendar`` (``sla.calendar`` when empty)."""
    hotline = settings.hotline
    if not hotline.desk_number:
        return False
    calendar = current_context(conn, settings).calendars[hotline.desk_calendar or settings.sla.calendar]
    return calendar.is_working_time(now)
