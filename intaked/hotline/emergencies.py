"""Hotline emergencies that join the one already being paged instead of paging again.

Pressing the emergency key (``trust.hotline_emergency_choice``) pages QRC at once, unconfirmed.
So that a caller redialling, a withheld number calling again and again, or a flood of emergency
calls cannot page the on-call people over and over, an emergency call *joins* a live emergency
page (state ``active``, or ``acknowledged`` while its ticket is open) instead of starting one:

- ``same_caller``: an emergency call from the same caller id within ``hotline.emergency_window``
  of an emergency call on that page's ticket;
- ``withheld_caller``: likewise for calls whose caller id is withheld or anonymous (all of them
  count as one caller);
- ``cap``: ``hotline.max_unconfirmed_emergency_pages`` hotline pages are active and unconfirmed
  already: the call joins the newest of them.

The call's ticket is still filed (nothing lost; it keeps its trusted P1 suggestion) and linked by
events: ``emergency_joined`` on it, ``emergency_call_joined`` on the paged ticket. The people that
page reached get one short SMS per minute at most, through the outbox: "N more emergency calls,
latest from ...". A row not sent yet is rewritten with the newer count, so a flood yields one SMS
a minute. A person can still page anything by setting the priority (``intaked ticket triage``).

Every function runs in the caller's transaction; :func:`lock_emergencies` serialises the
decisions on PostgreSQL (SQLite has one writer).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, and_, func, not_, or_, select, update

from intaked.config import Settings
from intaked.hotline.callmessage import HeldCall
from intaked.outbound.outbox import enqueue
from intaked.sla.targets import wall_time
from intaked.store.dialect import lock_name
from intaked.store.models import (
    call_table,
    outbox_table,
    page_attempt_table,
    page_table,
    ticket_event_table,
    ticket_table,
)
from intaked.tickets.events import event, record_events

log = structlog.get_logger(__name__)

ACTOR = "intaked"
SUMMARY_PURPOSE = "hotline_emergency_more"
#: At most one "more emergency calls" SMS per person and page in this time.
SUMMARY_EVERY = dt.timedelta(minutes=1)
OPEN_STATUSES = ("new", "open", "pending")


@dataclass(frozen=True, slots=True)
class JoinedEmergency:
    """The live emergency page an emergency call joined, and why."""

    page_id: int
    ticket_id: int
    number: str
    why: str


def withheld(number: str | None) -> bool:
    """A caller id that is not one person's: withheld, anonymous, restricted, unknown."""
    return not (number or "").startswith("+")


def lock_emergencies(conn: Connection) -> None:
    """One emergency decision at a time (PostgreSQL; SQLite has a single writer). Taken before
    any row lock of the call's transaction, so that it can never wait in a cycle."""
    lock_name(conn, "hotline:emergency")


def _live() -> Any:
    return or_(
        page_table.c.state == "active",
        and_(page_table.c.state == "acknowledged", ticket_table.c.status.in_(OPEN_STATUSES)),
    )


def emergency_to_join(held: HeldCall, settings: Settings) -> JoinedEmergency | None:
    """The live emergency page this emergency call joins instead of paging (module docstring)."""
    conn, call, ticket_id = held.conn, held.call, int(held.ticket["id"])
    hotline = settings.hotline
    since = call["started_at"] - wall_time(hotline.emergency_window)
    caller = call["from_number"]
    same_caller = (
        not_(call_table.c.from_number.like("+%")) if withheld(caller) else call_table.c.from_number == caller
    )
    row = conn.execute(
        select(page_table.c.id, ticket_table.c.id.label("ticket_id"), ticket_table.c.number)
        .select_from(
            page_table.join(ticket_table, ticket_table.c.id == page_table.c.ticket_id).join(
                call_table, call_table.c.ticket_id == ticket_table.c.id
            )
        )
        .where(
            _live(),
            ticket_table.c.channel == "phone",
            ticket_table.c.id != ticket_id,
            call_table.c.menu_choice == settings.trust.hotline_emergency_choice,
            call_table.c.started_at >= since,
            call_table.c.id != call["id"],
            same_caller,
        )
        .order_by(page_table.c.id.desc())
        .limit(1)
    ).first()
    if row is not None:
        why = "withheld_caller" if withheld(caller) else "same_caller"
        return JoinedEmergency(int(row.id), int(row.ticket_id), str(row.number), why)
    unconfirmed = (
        select(page_table.c.id, ticket_table.c.id.label("ticket_id"), ticket_table.c.number)
        .join(ticket_table, ticket_table.c.id == page_table.c.ticket_id)
        .where(
            page_table.c.state == "active",
            page_table.c.unconfirmed.is_(True),
            ticket_table.c.channel == "phone",
            ticket_table.c.id != ticket_id,
        )
        .order_by(page_table.c.id.desc())
    )
    rows = conn.execute(unconfirmed.limit(hotline.max_unconfirmed_emergency_pages)).all()
    if len(rows) < hotline.max_unconfirmed_emergency_pages:
        return None
    newest = rows[0]
    return JoinedEmergency(int(newest.id), int(newest.ticket_id), str(newest.number), "cap")


def join_emergency(held: HeldCall, joined: JoinedEmergency) -> int:
    """Link the call's ticket to the paged one (an event on each) and tell the people the page
    reached, at most once a minute each; returns how many emergency calls joined that page."""
    conn, call, ticket, now = held.conn, held.call, held.ticket, held.now
    caller = call["from_number"] or "(withheld)"
    joined_detail = {
        "ticket": joined.number,
        "page": joined.page_id,
        "why": joined.why,
        "call_sid": call["call_sid"],
    }
    call_detail = {
        "ticket": ticket["number"],
        "page": joined.page_id,
        "why": joined.why,
        "from": caller,
        "call_sid": call["call_sid"],
    }
    record_events(
        conn,
        [
            event(int(ticket["id"]), "emergency_joined", now, detail=joined_detail),
            event(joined.ticket_id, "emergency_call_joined", now, detail=call_detail),
        ],
    )
    count = int(
        conn.execute(
            select(func.count()).where(
                ticket_event_table.c.ticket_id == joined.ticket_id,
                ticket_event_table.c.kind == "emergency_call_joined",
            )
        ).scalar_one()
    )
    body = summary_sms(joined.number, count, call["from_number"], str(ticket["number"]))
    for address in _reached(conn, joined.page_id):
        _queue_summary(conn, joined, address, body, now)
    log.warning(
        "hotline_emergency_joined",
        ticket=ticket["number"],
        paged_ticket=joined.number,
        page=joined.page_id,
        why=joined.why,
        call_sid=call["call_sid"],
        count=count,
    )
    return count


def summary_sms(paged_number: str, count: int, caller: str | None, latest_number: str) -> str:
    """The short SMS to QRC about emergency calls that joined the page of ``paged_number``."""
    calls = "call" if count == 1 else "calls"
    zh, en = ("未顯示號碼", "a withheld number") if withheld(caller) else (caller, caller)
    return (
        f"[緊急來電] {paged_number} 另有 {count} 通緊急來電，最新 {zh}（{latest_number}）/ "
        f"{count} more emergency {calls}, latest from {en} ({latest_number})"
    )


def _reached(conn: Connection, page_id: int) -> list[str]:
    """The phone numbers the page's SMS and calls went (or are going) to."""
    attempts = page_attempt_table
    return sorted(
        conn.execute(
            select(attempts.c.address)
            .where(attempts.c.page_id == page_id, attempts.c.channel.in_(("sms", "call")))
            .distinct()
        ).scalars()
    )


def _queue_summary(
    conn: Connection, joined: JoinedEmergency, address: str, body: str, now: dt.datetime
) -> None:
    """One SMS per person and page every ``SUMMARY_EVERY`` at most: a row not sent yet gets the
    newer text; otherwise a new row waits until that long after the previous one left."""
    prefix = f"{SUMMARY_PURPOSE}:{joined.page_id}:{address}:"
    mine = and_(
        outbox_table.c.purpose == SUMMARY_PURPOSE,
        outbox_table.c.recipient == address,
        outbox_table.c.idempotency_key.startswith(prefix, autoescape=True),
    )
    earlier = conn.execute(
        select(
            outbox_table.c.id,
            outbox_table.c.state,
            outbox_table.c.created_at,
            outbox_table.c.next_attempt_at,
            outbox_table.c.sent_at,
        )
        .where(mine)
        .order_by(outbox_table.c.id.desc())
    ).all()
    last = earlier[0] if earlier else None
    if last is not None and last.state == "pending":
        payload = json.dumps({"to": address, "body": body}, ensure_ascii=False)
        rewritten = conn.execute(
            update(outbox_table)
            .where(outbox_table.c.id == last.id, outbox_table.c.state == "pending")
            .values(payload=payload)
        ).rowcount
        if rewritten:
            return
    due = now
    if last is not None:
        left = last.sent_at or last.next_attempt_at or last.created_at
        due = max(now, left + SUMMARY_EVERY)
    key = f"{prefix}{len(earlier) + 1}"
    enqueue(
        conn,
        [
            {
                "kind": "sms",
                "purpose": SUMMARY_PURPOSE,
                "idempotency_key": key,
                "ticket_id": joined.ticket_id,
                "recipient": address,
                "payload": {"to": address, "body": body},
            }
        ],
        now,
    )
    if due > now:
        later = update(outbox_table).where(outbox_table.c.idempotency_key == key)
        conn.execute(later.values(next_attempt_at=due))
