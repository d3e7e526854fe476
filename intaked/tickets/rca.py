"""After a major incident (issue 19, the seed's 根本原因分析): resolving a P1/P2 ticket opens one
root-cause-analysis follow-up for the QRC, which leads the RCA.

The follow-up is an ordinary ticket filed through intaked/tickets/filing.py: subject
``RCA: <incident subject>``, category ``service_request``, channel ``internal``, ``parent_id`` the
incident, team ``paging.qrc_team``, no priority (a person triages it if they want SLA targets).
Its due date, ``paging.rca_due`` (default 5 working days on the QRC team's calendar) from the
resolution, is stored as its commitment (``first_commitment_at`` = ``commitment_at``), which
a later priority does not move (intaked/sla/commitments.py: a commitment that differs from the
standard time stays). Once per incident: the incident's ``rca_opened`` event is the record, so a
reopened and resolved-again incident opens no second one. Runs in the caller's transaction, on
the incident's locked row: intaked's ``resolve`` and the SLA sync noticing a status another tool
wrote (intaked/sla/tracker.py, given :func:`open_rca_followups` as a callback) both call it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy import Connection, select

from intaked.config import Settings
from intaked.paging.policy import PAGED_PRIORITIES
from intaked.sla.context import current_context
from intaked.sla.targets import Target
from intaked.store.models import ticket_event_table
from intaked.tickets.events import event, record_events
from intaked.tickets.filing import created_event, open_tickets, ticket_numbers, ticket_row

log = structlog.get_logger(__name__)

RCA_CHANNEL = "internal"
RCA_CATEGORY = "service_request"


def rca_due(conn: Connection, settings: Settings, resolved_at: dt.datetime) -> dt.datetime:
    """When the RCA of an incident resolved at ``resolved_at`` is due: ``paging.rca_due`` on the
    working clock of the QRC team's calendar."""
    calendar = current_context(conn, settings).calendar_for(settings.paging.qrc_team)
    return Target(settings.paging.rca_due, "working").deadline(calendar, resolved_at).astimezone(dt.UTC)


def _has_rca(conn: Connection, incident_id: int) -> bool:
    events = ticket_event_table
    query = select(events.c.id).where(events.c.ticket_id == incident_id, events.c.kind == "rca_opened")
    return conn.execute(query.limit(1)).first() is not None


def open_rca_followups(
    conn: Connection, settings: Settings, incidents: Sequence[Mapping[str, Any]], now: dt.datetime
) -> list[int]:
    """Open the RCA follow-up of every resolved P1/P2 among ``incidents`` (ticket rows, locked
    by the caller) that has none yet; the new tickets' ids."""
    opened = []
    for incident in incidents:
        if incident["status"] != "resolved" or incident["priority"] not in PAGED_PRIORITIES:
            continue
        if _has_rca(conn, incident["id"]):
            continue
        opened.append(_open_one(conn, settings, incident, now))
    return opened


def _open_one(conn: Connection, settings: Settings, incident: Mapping[str, Any], now: dt.datetime) -> int:
    due = rca_due(conn, settings, incident["resolved_at"] or now)
    (number,) = ticket_numbers(conn, settings, [now])
    row = ticket_row(
        number,
        RCA_CHANNEL,
        f"RCA: {incident['subject'] or incident['number']}"[:500],
        now,
        parent_id=incident["id"],
        category=RCA_CATEGORY,
        team=settings.paging.qrc_team,
        requester_name=None,
        requester_email=None,
        first_commitment_at=due,
        commitment_at=due,
        sla_commitment_at=due,
    )
    (rca_id,) = open_tickets(conn, settings, [row])
    detail = {"rca": number, "incident": incident["number"], "due": due.isoformat()}
    record_events(
        conn,
        [
            created_event(rca_id, row, now, incident=incident["number"]),
            event(rca_id, "rca_for", now, detail=detail),
            event(incident["id"], "rca_opened", now, detail=detail),
        ],
    )
    log.info("rca_opened", ticket=incident["number"], rca=number, due=due.isoformat())
    return rca_id
