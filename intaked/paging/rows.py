"""The page and ticket rows every part of paging reads and moves, and the events it records.

Every transition holds the page's row (``FOR UPDATE`` on PostgreSQL; SQLite has one writer)
through :func:`lock_page` and bumps its ``fence``, the fencing token a wake-up read. What a
transition works on (its transaction, the held page, the page's ticket, the time) travels as one
:class:`HeldPage`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from intaked.config import Settings
from intaked.paging.oncall import resolve_target
from intaked.paging.texts import PageFacts
from intaked.sla.tracker import ACTOR, event
from intaked.store.dialect import locked
from intaked.store.models import page_table, ticket_event_table, ticket_table


@dataclass(frozen=True, slots=True)
class AckResult:
    """What an acknowledgement did: ``acknowledged`` is False when the page had already ended."""

    acknowledged: bool
    page_id: int
    number: str
    state: str
    by: str | None


class PageNotFound(LookupError):
    """No page for that ticket (or reply code)."""


@dataclass(frozen=True, slots=True)
class HeldPage:
    """A page whose row this transaction holds (:func:`lock_page`), its ticket's row, and the
    time of the transition: what the sends and steps of one transition work on."""

    conn: Connection
    page: Mapping[str, Any]
    ticket: Mapping[str, Any]
    now: dt.datetime

    @property
    def policy(self) -> dict[str, Any]:
        """The escalation policy frozen on the page."""
        policy: dict[str, Any] = json.loads(self.page["policy"])
        return policy


def lock_page(conn: Connection, page_id: int) -> Any:
    """The page's row, held for this transaction (None if there is no such page)."""
    query = select(page_table).where(page_table.c.id == page_id)
    query = locked(conn, query)
    return conn.execute(query).mappings().one_or_none()


def ticket_row(conn: Connection, ticket_id: int) -> Any:
    """The paged ticket's row."""
    return conn.execute(select(ticket_table).where(ticket_table.c.id == ticket_id)).mappings().one()


def hold(conn: Connection, page: Mapping[str, Any], now: dt.datetime) -> HeldPage:
    """The held ``page`` with its ticket's row, for a transition at ``now``."""
    return HeldPage(conn, page, ticket_row(conn, page["ticket_id"]), now)


def page_facts(ticket: Mapping[str, Any], page: Any) -> PageFacts:
    """What the page's texts say about the ticket."""
    requester = " ".join(
        str(part)
        for part in (ticket["requester_name"], ticket["requester_phone"] or ticket["requester_email"])
        if part
    )
    return PageFacts(
        priority=page["priority"],
        number=ticket["number"],
        subject=ticket["subject"] or "",
        requester=requester,
        reply_code=page["reply_code"],
        unconfirmed=bool(page["unconfirmed"]),
        war_room=str(json.loads(page.get("policy") or "{}").get("war_room") or ""),
    )


def page_event(
    conn: Connection,
    ticket_id: int,
    kind: str,
    detail: Mapping[str, Any],
    now: dt.datetime,
    actor: str = ACTOR,
) -> None:
    """Record one paging event on the ticket's timeline."""
    conn.execute(ticket_event_table.insert(), [event(ticket_id, kind, detail, now, actor)])


def end_page(conn: Connection, page: Mapping[str, Any], state: str, now: dt.datetime, **values: Any) -> None:
    """Stop the page in ``state`` (acknowledged, cancelled, exhausted)."""
    conn.execute(
        update(page_table)
        .where(page_table.c.id == page["id"])
        .values(
            state=state, ended_at=now, next_step_at=None, fence=page["fence"] + 1, updated_at=now, **values
        )
    )


def previous_position(page: Mapping[str, Any], steps: int) -> tuple[int, int]:
    """(round, step) of the step that ran last."""
    if page["step"] == 0:
        return page["round"] - 1, steps - 1
    return page["round"], page["step"] - 1


def resolve_person(conn: Connection, settings: Settings, target: Mapping[str, str], now: dt.datetime) -> Any:
    """The person a policy target (``{"person": ...}`` or ``{"oncall": ...}``) names now."""
    return resolve_target(conn, settings, dict(target), now)
