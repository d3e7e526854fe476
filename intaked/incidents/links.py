"""Linking a ticket to a major incident by hand, unlinking it, and listing an incident's reports
(``intaked incident link|unlink|show``). Reports of a paged outage are linked automatically as
they are filed (intaked/paging/grouping.py), with the same column and events."""

from __future__ import annotations

import datetime as dt
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, func, select, update

from intaked.paging.grouping import LINKED_EVENT, LINKED_TO_EVENT, link_report
from intaked.paging.rows import page_event
from intaked.store.engine import read_only
from intaked.store.models import ticket_table
from intaked.store.types import utcnow
from intaked.tickets.lifecycle import TicketNotFound, locked_row

log = structlog.get_logger(__name__)

_t = ticket_table
UNLINKED_EVENT = "incident_report_unlinked"
UNLINKED_FROM_EVENT = "unlinked_from_incident"


class LinkRefused(ValueError):
    """The link or unlink does not apply (unknown ticket, a loop, a chain)."""


def _row(conn: Connection, number: str) -> Any:
    try:
        return locked_row(conn, number)
    except TicketNotFound:
        raise LinkRefused(f"no ticket {number}") from None


def _number(conn: Connection, ticket_id: int) -> str:
    return str(conn.execute(select(_t.c.number).where(_t.c.id == ticket_id)).scalar_one())


def _linked_count(conn: Connection, ticket_id: int) -> int:
    query = select(func.count()).where(_t.c.major_incident_id == ticket_id)
    return int(conn.execute(query).scalar_one())


def link(engine: Engine, number: str, to: str, *, by: str, now: dt.datetime | None = None) -> str:
    """Link ticket ``number`` to the major incident ``to``; what was done, for the operator."""
    now = now or utcnow()
    if number == to:
        raise LinkRefused(f"cannot link {number} to itself")
    with engine.begin() as conn:
        ticket, incident = _row(conn, number), _row(conn, to)
        if incident["major_incident_id"] is not None:
            above = _number(conn, incident["major_incident_id"])
            raise LinkRefused(f"{to} is itself linked to {above}: link {number} to {above} instead")
        if ticket["major_incident_id"] == incident["id"]:
            return f"{number} is already linked to {to}"
        if ticket["major_incident_id"] is not None:
            other = _number(conn, ticket["major_incident_id"])
            raise LinkRefused(f"{number} is linked to {other}: unlink it first")
        if (linked := _linked_count(conn, ticket["id"])) > 0:
            tickets = "ticket" if linked == 1 else "tickets"
            raise LinkRefused(
                f"{number} is a major incident with {linked} linked {tickets}: it cannot be linked"
            )
        link_report(conn, ticket, incident["id"], to, why=f"linked by {by}", actor=by, now=now)
    log.info("incident_linked", ticket=number, major_incident=to, by=by)
    return f"{number} linked to {to}"


def unlink(engine: Engine, number: str, *, by: str, now: dt.datetime | None = None) -> str:
    """Unlink ticket ``number`` from its major incident; what was done, for the operator."""
    now = now or utcnow()
    with engine.begin() as conn:
        ticket = _row(conn, number)
        incident_id = ticket["major_incident_id"]
        if incident_id is None:
            raise LinkRefused(f"{number} is not linked to a major incident")
        incident = _number(conn, incident_id)
        conn.execute(update(_t).where(_t.c.id == ticket["id"]).values(major_incident_id=None, updated_at=now))
        page_event(conn, ticket["id"], UNLINKED_FROM_EVENT, {"ticket": incident, "by": by}, now, by)
        page_event(conn, incident_id, UNLINKED_EVENT, {"ticket": number, "by": by}, now, by)
    log.info("incident_unlinked", ticket=number, major_incident=incident, by=by)
    return f"{number} unlinked from {incident}"


def linked_tickets(conn: Connection, incident_id: int) -> list[Any]:
    """The tickets linked to the major incident, oldest first."""
    query = select(_t).where(_t.c.major_incident_id == incident_id).order_by(_t.c.id)
    return list(conn.execute(query).mappings().all())


def show(engine: Engine, number: str) -> tuple[Any, list[Any]]:
    """The major incident ``number``'s row and its linked tickets (``intaked incident show``)."""
    with read_only(engine).connect() as conn:
        incident = conn.execute(select(_t).where(_t.c.number == number)).mappings().first()
        if incident is None:
            raise LinkRefused(f"no ticket {number}")
        return incident, linked_tickets(conn, incident["id"])


__all__ = ["LINKED_EVENT", "LINKED_TO_EVENT", "LinkRefused", "link", "linked_tickets", "show", "unlink"]
