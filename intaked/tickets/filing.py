"""Filing a new ticket, for mail (intaked/intake/ingest.py, a whole batch at once) and for a
call (intaked/hotline/calls.py) alike: its number, its routing columns, its deadlines, the
insert, the ``created`` and ``routed`` events, the acknowledgement hand-off and the trusted page.

Every function works on plain ``tickets`` rows (dicts) in the caller's transaction, batch-first:
the mail path files a batch with one ``executemany`` per table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, insert

from intaked.config import Settings
from intaked.paging.grouping import group_report
from intaked.paging.pages import start_page
from intaked.paging.policy import PAGED_PRIORITIES
from intaked.routing.decide import RoutedReport
from intaked.security.mails import team_notice
from intaked.sla.commitments import keep_current
from intaked.sla.context import current_context
from intaked.sla.deadlines import compute
from intaked.store.models import ticket_table
from intaked.store.numbering import allocate_ticket_numbers, ticket_period
from intaked.tickets.events import ACTOR, TicketEvent, clean_text, event
from intaked.tickets.team_notice import queue_team_notices

_INSERT_TICKETS = insert(ticket_table).returning(ticket_table.c.id, sort_by_parameter_order=True)

#: The columns a ticket has not set yet when it is filed, as the deadline rules read them.
_NOT_YET: dict[str, Any] = {
    "team": None,
    "occurred_at": None,
    "resolved_at": None,
    "first_response_at": None,
    "triage_breached_at": None,
    "response_warned_at": None,
    "response_breached_at": None,
    "resolution_warned_at": None,
    "resolution_breached_at": None,
    "sla_paused_seconds": 0.0,
    "standard_due_at": None,
    "first_commitment_at": None,
    "commitment_at": None,
    "sla_commitment_at": None,
    "extension_count": 0,
}


def ticket_numbers(conn: Connection, settings: Settings, received: Sequence[dt.datetime]) -> list[str]:
    """One new ticket number per report, in the period (``tickets.number_prefix``) it arrived in."""
    tickets = settings.tickets
    periods = [ticket_period(tickets.number_prefix, at, tickets.timezone) for at in received]
    return allocate_ticket_numbers(conn, periods) if periods else []


def ticket_row(number: str, channel: str, subject: str, now: dt.datetime, **columns: Any) -> dict[str, Any]:
    """A new ticket's row (status ``new``, no priority yet), with the channel's own ``columns``."""
    return {
        "number": number,
        "status": "new",
        "priority": None,
        "channel": channel,
        "subject": subject,
        "parent_id": None,
        "created_at": now,
        "updated_at": now,
        **columns,
    }


def apply_routing(
    row: dict[str, Any], report: RoutedReport, requester_name: str | None, requester_phone: str | None
) -> None:
    """Set the routing columns (intaked/routing/decide.py) on a new ticket's row, before its
    deadlines, so that a routed team's calendar counts."""
    columns = report.ticket_columns(requester_name, requester_phone)
    row.update(
        {key: clean_text(value) if isinstance(value, str) else value for key, value in columns.items()}
    )


def with_deadlines(conn: Connection, ticket_rows: Sequence[dict[str, Any]], settings: Settings) -> None:
    """New tickets are born with their triage deadline (intaked/sla/deadlines.py) and their
    standard completion time and commitments (intaked/sla/commitments.py: NULL until a priority
    gives them a resolution deadline), so the SLA tracker has nothing to catch up on for them."""
    if not ticket_rows:
        return
    ctx = current_context(conn, settings)
    for row in ticket_rows:
        ticket = {**_NOT_YET, **row}
        deadlines = compute(ctx, ticket)
        row.update(deadlines.columns(), sla_status=row["status"], sla_priority=None, sla_occurred_at=None)
        commitments, _ = keep_current(ticket, deadlines.resolution_due_at, row["created_at"])
        row.update(commitments)


def open_tickets(
    conn: Connection,
    settings: Settings,
    ticket_rows: Sequence[dict[str, Any]],
    bodies: Sequence[str | None] = (),
) -> list[int]:
    """Give the routed rows their deadlines and insert them (one ``executemany``); their ids, in
        order. The teams that want it get a notice of each (``bodies``: the reports' text, in order), and
    the security team one of each security incident (intaked/security/mails.py)."""
    if not ticket_rows:
        return []
    with_deadlines(conn, ticket_rows, settings)
    ids = [row.id for row in conn.execute(_INSERT_TICKETS, list(ticket_rows))]
    queue_team_notices(conn, settings, ticket_rows, ids, bodies)
    for row, ticket_id in zip(ticket_rows, ids, strict=True):
        if row.get("category") == "security_incident":  # the security team hears of it at once
            team_notice(conn, settings, {**row, "id": ticket_id}, ticket_id, row["created_at"])
    return ids


def created_event(ticket_id: int, row: dict[str, Any], now: dt.datetime, **more: Any) -> TicketEvent:
    """The ``created`` event of a new ticket: what it was filed as, and ``more`` (how it came)."""
    after = {
        "number": row["number"],
        "status": row["status"],
        "channel": row["channel"],
        "subject": row["subject"],
        "requester_email": row["requester_email"],
        **more,
    }
    return event(ticket_id, "created", now, after=after)


def routed_events(ticket_id: int, report: RoutedReport, now: dt.datetime) -> list[TicketEvent]:
    """A ``routed`` event when routing decided something (a rule matched, the directory knew them)."""
    return [event(ticket_id, "routed", now, detail=report.event_detail())] if report.worth_an_event else []


def ack_ticket(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ticket as the acknowledgement templates see a new one."""
    return {
        "number": row["number"],
        "subject": row["subject"],
        "status": "new",
        "priority": None,
        "channel": row["channel"],
    }


def page_trusted(
    conn: Connection,
    settings: Settings,
    ticket_id: int,
    priority: str | None,
    suggested_by: str,
    now: dt.datetime,
) -> int | None:
    """A P1/P2 suggested by a trusted source pages QRC in this same transaction, marked
    unconfirmed until a person sets the priority (intaked/paging/engine.py); without a policy for
    it the ticket gets a ``page_not_started`` event instead. A report of an outage already being
    paged is linked to that major incident instead (intaked/paging/grouping.py). The page's id,
    None if none started."""
    if priority not in PAGED_PRIORITIES or priority is None:
        return None
    if group_report(conn, settings, ticket_id, now) is not None:
        return None
    return start_page(
        conn,
        settings,
        ticket_id,
        priority,
        reason=f"trusted suggestion ({suggested_by})",
        unconfirmed=True,
        actor=ACTOR,
        now=now,
    )


def page_trusted_suggestions(
    conn: Connection,
    settings: Settings,
    ticket_rows: Sequence[dict[str, Any]],
    ticket_ids: Sequence[int],
    now: dt.datetime,
) -> None:
    """:func:`page_trusted` for each new ticket whose suggestion is trusted."""
    for row, ticket_id in zip(ticket_rows, ticket_ids, strict=True):
        if row.get("suggestion_trusted"):
            by = row.get("suggested_by") or "routing"
            page_trusted(conn, settings, ticket_id, row.get("suggested_priority"), by, now)
