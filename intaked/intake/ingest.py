"""Ingest: parsed mail becomes ticket rows, in the caller's transaction (sync, DB thread).

Every captured item ends as exactly one stored message: a new ticket, or nothing new when the same
message was already stored, in which case the item is marked ``duplicate`` and points at the
ticket that has it. A message the parser could not read still becomes a ticket: its raw bytes stay
in the ledger and the problems are recorded.

The same message is: the same Message-ID *and* the same content fingerprint
(intaked/parsing/fingerprint.py: From, Date and the body, not the trace fields mail systems add),
or the same raw bytes (the key of a mail without a readable Message-ID). A different mail that
reuses a stored Message-ID (scanners, printers, some libraries, or an outsider pre-empting one)
is stored as its own message under ``<key>|content:<fingerprint>``, with a ``message_id_reused``
parse problem naming the ticket that already has that Message-ID; it opens its own ticket and is
acknowledged like any report. A stored row without a fingerprint (stored before revision 0009)
gets one computed from its raw bytes in the ledger, or, when those are gone, is taken to be the
same message.

A whole batch is stored with one statement per table (``executemany``): one dedupe lookup, one
number allocation per period, then tickets, messages, attachments, events and the ledger update.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, update

from intaked.config import Settings
from intaked.intake.ledger import ITEM_CLAIMS, ClaimedItem
from intaked.intake.mail_events import batch_events
from intaked.intake.messages import (
    insert_messages,
    message_row,
    problems,
    reuse_problem,
    reused_on,
    store_attachments,
)
from intaked.intake.planning import ParsedItem, Plan, plan_batch
from intaked.outbound.acks import AckCandidate, queue_acknowledgements
from intaked.parsing import ParsedMessage
from intaked.routing.decide import RoutedReport, route_mail
from intaked.routing.reply_threading import Decision
from intaked.store.models import inbound_item_table, ticket_table
from intaked.surveys.answering import Reply, record_answer
from intaked.tickets.events import TicketEvent, clean_text, events_from_acks, record_events
from intaked.tickets.filing import (
    apply_routing,
    open_tickets,
    page_trusted_suggestions,
    routed_events,
    ticket_numbers,
    ticket_row,
)

__all__ = ["ClaimLost", "IngestOutcome", "ParsedItem", "ingest_mail_batch"]

_tickets = ticket_table
_items = inbound_item_table

_FINISH_ITEMS = (
    update(_items)
    .where(ITEM_CLAIMS.fence(bindparam("item_id"), bindparam("token")))
    .values(
        state=bindparam("new_state"),
        ticket_id=bindparam("tid"),
        processed_at=bindparam("now"),
        last_error=None,
    )
)


class ClaimLost(Exception):
    """Another worker took an item of this batch over; the transaction must not commit."""


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What became of one item."""

    state: str  # "done" or "duplicate"
    ticket_id: int
    ticket_number: str
    message_id: str | None
    inbound_item: int
    decision: str  # "new", "join", "reopen", "follow_up" or "duplicate"
    message_id_also_on: str | None = None  # a different mail with this Message-ID is on that ticket
    spam: str | None = None  # why it is spam: a new ticket kept in the spam quarantine
    parent_number: str | None = None  # a new ticket's parent: the closed ticket it follows up, the
    # ticket whose subject tag it may not join, or the ticket a spam mail named
    machine: str | None = None  # why it is machine mail (it joined, changing nothing)


@dataclass(frozen=True, slots=True)
class _Opened:
    """The tickets a batch opened: entry index → its row, and how routing went for it."""

    rows: dict[int, dict[str, Any]]
    routed: dict[int, RoutedReport]
    ids: list[int]


def _ticket_row(
    item: ClaimedItem, parsed: ParsedMessage | None, number: str, plan: Plan, now: dt.datetime
) -> dict[str, Any]:
    sender = parsed.sender if parsed else None
    row = ticket_row(
        number,
        "email",
        clean_text(parsed.subject if parsed else "") or "",
        now,
        spam_reason=clean_text(plan.spam),
        requester_name=clean_text(sender.name) if sender and sender.name else None,
        requester_email=clean_text(sender.address if sender and sender.address else item.envelope_from)
        or None,
        requester_phone=None,
        parent_id=plan.parent_id,
    )
    if plan.spam:
        row["status"] = "spam"
    return row


def ingest_mail_batch(
    conn: Connection, entries: Sequence[ParsedItem], settings: Settings, now: dt.datetime
) -> list[IngestOutcome]:
    """Store a batch in arrival order: new tickets, replies threaded into their tickets, duplicates
    recognised; then finish every item in the ledger (fenced by its claim token)."""
    plans = plan_batch(conn, entries, settings)
    opened = _open_tickets(conn, entries, plans, settings, now)
    storing = [i for i, plan in enumerate(plans) if plan.decision is not None]
    found = {i: [*problems(entries[i]), *reuse_problem(entries[i], plans, i)] for i in storing}
    message_rows = [message_row(plans[i].ticket, entries[i], plans[i].key, found[i], now) for i in storing]
    message_ids = insert_messages(conn, message_rows)
    store_attachments(conn, [(message_ids[n], entries[i][1]) for n, i in enumerate(storing)])
    _touch_tickets(conn, plans, now)
    events = batch_events(entries, plans, storing, opened.rows, found, now)
    for i, report in opened.routed.items():
        events += routed_events(plans[i].ticket, report, now)
    events += _acknowledge(conn, entries, plans, storing, opened.rows, settings, now)
    record_events(conn, events)
    _answer_surveys(conn, entries, plans, storing, settings, now)
    page_trusted_suggestions(conn, settings, list(opened.rows.values()), opened.ids, now)
    return _finish(conn, entries, plans, now)


def _open_tickets(
    conn: Connection,
    entries: Sequence[ParsedItem],
    plans: Sequence[Plan],
    settings: Settings,
    now: dt.datetime,
) -> _Opened:
    """File the batch's new tickets (intaked/tickets/filing.py), then point every plan at its ticket."""
    opening = [i for i, plan in enumerate(plans) if plan.decision in (Decision.NEW, Decision.FOLLOW_UP)]
    numbers = ticket_numbers(conn, settings, [entries[i][0].received_at for i in opening])
    rows = {
        i: _ticket_row(entries[i][0], entries[i][1], numbers[n], plans[i], now) for n, i in enumerate(opening)
    }
    routed = _route_new_tickets(entries, rows, settings)
    bodies = [parsed.body_text if (parsed := entries[i][1]) else None for i in opening]
    new_ids = open_tickets(conn, settings, list(rows.values()), bodies)
    for n, i in enumerate(opening):
        plans[i].ticket_id, plans[i].number = new_ids[n], numbers[n]
    for plan in plans:  # in order: an earlier entry is always resolved before a later one
        if plan.ticket_id is not None:
            continue
        if plan.earlier is not None:
            plan.ticket_id, plan.number = plans[plan.earlier].ticket_id, plans[plan.earlier].number
        elif plan.existing is not None:
            plan.ticket_id = plan.existing
    return _Opened(rows, routed, new_ids)


def _finish(
    conn: Connection, entries: Sequence[ParsedItem], plans: Sequence[Plan], now: dt.datetime
) -> list[IngestOutcome]:
    """Finish every item in the ledger (fenced by its claim token); what became of each."""
    outcomes: list[IngestOutcome] = []
    finish_rows = []
    for (item, parsed, _), plan in zip(entries, plans, strict=True):
        state = "duplicate" if plan.decision is None else "done"
        finish_rows.append(
            {"item_id": item.id, "token": item.token, "new_state": state, "tid": plan.ticket, "now": now}
        )
        outcomes.append(
            IngestOutcome(
                state,
                plan.ticket,
                plan.number or "",
                parsed.message_id if parsed else None,
                item.id,
                plan.decision.value if plan.decision else "duplicate",
                reused_on(plans, plan),
                spam=plan.spam if plan.decision else None,
                parent_number=plan.parent_number if plan.parent_id is not None else None,
                machine=plan.machine if plan.decision else None,
            )
        )
    result = conn.execute(_FINISH_ITEMS, finish_rows)
    if result.rowcount != len(finish_rows):
        raise ClaimLost(f"{len(finish_rows) - result.rowcount} item(s) of this batch were taken over")
    return outcomes


def _route_new_tickets(
    entries: Sequence[ParsedItem], ticket_rows: dict[int, dict[str, Any]], settings: Settings
) -> dict[int, RoutedReport]:
    """Routing rules, directory and trust for each new ticket (intaked/routing/decide.py): sets
    the routing columns on its row; returns the outcome per entry index."""
    routed: dict[int, RoutedReport] = {}
    for i, row in ticket_rows.items():
        item, parsed, _ = entries[i]
        report = route_mail(settings, parsed, item.envelope_from, item.envelope_to)
        apply_routing(row, report, row["requester_name"], row["requester_phone"])
        if row["status"] == "spam":
            row["suggestion_trusted"] = False  # spam pages no one, whatever it claims
        routed[i] = report
    return routed


def _acknowledge(
    conn: Connection,
    entries: Sequence[ParsedItem],
    plans: Sequence[Plan],
    storing: Sequence[int],
    ticket_rows: dict[int, dict[str, Any]],
    settings: Settings,
    now: dt.datetime,
) -> list[TicketEvent]:
    """Queue acknowledgements for the new tickets (same transaction); events for each decision."""
    candidates = []
    for i in storing:
        item, parsed, _ = entries[i]
        plan = plans[i]
        if plan.survey is not None:
            continue  # a survey answer: no acknowledgement, no reply notice
        row = ticket_rows.get(i)
        sender = parsed.sender if parsed else None
        candidates.append(
            AckCandidate(
                ticket_id=plan.ticket,
                ticket={
                    "number": plan.number,
                    "subject": row["subject"] if row else (parsed.subject if parsed else ""),
                    "status": "new" if row else "open",
                    "priority": None,
                    "channel": "email",
                },
                requester=(
                    row["requester_email"] if row else (sender.address if sender else item.envelope_from)
                ),
                requester_name=row["requester_name"] if row else (sender.name if sender else None),
                parsed=parsed,
                envelope_from=item.envelope_from,
                received_at=item.received_at,
                reply=row is None,
                withheld=f"flagged as spam by our mail server ({plan.spam})" if plan.spam else None,
            )
        )
    return events_from_acks(queue_acknowledgements(conn, candidates, settings, now), now)


def _answer_surveys(
    conn: Connection,
    entries: Sequence[ParsedItem],
    plans: Sequence[Plan],
    storing: Sequence[int],
    settings: Settings,
    now: dt.datetime,
) -> None:
    """Store the survey answers of the batch (stored as messages already): intaked/surveys/."""
    for i in storing:
        plan = plans[i]
        if plan.survey is None:
            continue
        item, parsed, _ = entries[i]
        text = parsed.body_text if parsed else ""
        message_id = parsed.message_id if parsed else None
        reply = Reply(plan.survey, text, item.received_at, plan.machine, message_id)
        record_answer(conn, settings, reply, now)


def _touch_tickets(conn: Connection, plans: Sequence[Plan], now: dt.datetime) -> None:
    reopened = sorted({p.ticket for p in plans if p.decision is Decision.REOPEN})
    joined = sorted({p.ticket for p in plans if p.decision is Decision.JOIN and p.existing is not None})
    if reopened:
        conn.execute(
            update(_tickets).where(_tickets.c.id.in_(reopened)).values(status="open", updated_at=now)
        )
    if joined:
        conn.execute(update(_tickets).where(_tickets.c.id.in_(joined)).values(updated_at=now))
