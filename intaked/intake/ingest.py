"""Ingest: parsed mail becomes ticket rows, in the caller's transaction (sync, DB thread).

Every captured item ends as exactly one stored message: a new ticket, or nothing new when the same
message was already stored (same Message-ID, or, without one, the same raw bytes), in which case
the item is marked ``duplicate`` and points at the ticket that has it. A message the parser could
not read still becomes a ticket: its raw bytes stay in the ledger and the problems are recorded.

A whole batch is stored with one statement per table (``executemany``): one dedupe lookup, one
number allocation per period, then tickets, messages, attachments, events and the ledger update.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from intaked.config import Settings
from intaked.intake.ledger import ClaimedItem
from intaked.outbound.acks import AckCandidate, queue_acknowledgements
from intaked.paging.engine import PAGED_PRIORITIES, start_page
from intaked.parsing import ParsedMessage
from intaked.routing.decide import RoutedReport, route_mail
from intaked.routing.threading import Decision, decide, first_match, referenced_ids, subject_ticket_numbers
from intaked.sla.context import current_context
from intaked.sla.deadlines import compute
from intaked.store.models import (
    attachment_table,
    blob_table,
    inbound_item_table,
    message_table,
    ticket_event_table,
    ticket_table,
)
from intaked.store.numbering import allocate_ticket_numbers, ticket_period

ACTOR = "intaked"
MAX_KEY_ID_LENGTH = 500
LOOKUP_CHUNK = 500

_tickets = ticket_table
_messages = message_table
_attachments = attachment_table
_blobs = blob_table
_events = ticket_event_table
_items = inbound_item_table

_INSERT_TICKETS = insert(_tickets).returning(_tickets.c.id, sort_by_parameter_order=True)
_INSERT_MESSAGES = insert(_messages).returning(_messages.c.id, sort_by_parameter_order=True)
_INSERT_ATTACHMENTS = insert(_attachments)
_INSERT_EVENTS = insert(_events)
_FINISH_ITEMS = (
    update(_items)
    .where(
        _items.c.id == bindparam("item_id"),
        _items.c.state == "processing",
        _items.c.claimed_by == bindparam("token"),
    )
    .values(
        state=bindparam("new_state"),
        ticket_id=bindparam("tid"),
        processed_at=bindparam("now"),
        last_error=None,
    )
)

#: (item, parsed message or None when the parser failed, the parser failure)
ParsedItem = tuple[ClaimedItem, ParsedMessage | None, str | None]


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


def dedupe_key(parsed: ParsedMessage | None, raw_sha256: str) -> str:
    """The key under which a message is stored once: its Message-ID, else its raw digest."""
    mid = parsed.message_id.strip() if parsed and parsed.message_id else ""
    if not mid:
        return f"sha256:{raw_sha256}"
    if len(mid) > MAX_KEY_ID_LENGTH:
        return "mid-sha256:" + hashlib.sha256(mid.encode("utf-8", "surrogatepass")).hexdigest()
    return f"mid:{mid}"


def clean_text(value: str | None) -> str | None:
    """Text the database accepts: no NUL characters (PostgreSQL refuses them), no lone surrogates."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def to_json(value: Any) -> str:
    """JSON as stored in event and problem columns (UTF-8 text, not escaped)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def find_stored(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
    """For the keys already stored: key → the (ticket id, number) that holds that message."""
    found: dict[str, tuple[int, str]] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), LOOKUP_CHUNK):
        chunk = unique[start : start + LOOKUP_CHUNK]
        rows = conn.execute(
            select(_messages.c.dedupe_key, _tickets.c.id, _tickets.c.number)
            .join(_tickets, _messages.c.ticket_id == _tickets.c.id)
            .where(_messages.c.dedupe_key.in_(chunk))
        )
        for row in rows:
            found[row.dedupe_key] = (row.id, row.number)
    return found


def _store_blobs(conn: Connection, contents: Sequence[bytes]) -> list[str]:
    digests = [hashlib.sha256(content).hexdigest() for content in contents]
    rows: dict[str, dict[str, Any]] = {}
    for digest, content in zip(digests, contents, strict=True):
        if digest in rows:
            continue
        packed, encoding = zlib.compress(content, 6), "zlib"
        if len(packed) >= len(content):
            packed, encoding = content, "identity"
        rows[digest] = {"sha256": digest, "size": len(content), "encoding": encoding, "data": packed}
    if rows:
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            dialect_insert(_blobs).on_conflict_do_nothing(index_elements=[_blobs.c.sha256]),
            list(rows.values()),
        )
    return digests


def store_blobs(conn: Connection, contents: Sequence[bytes]) -> list[str]:
    """Store ``contents`` in ``blobs`` (once per digest, zlib when it helps), in the caller's
    transaction; returns each one's hex SHA-256, the key its ``attachments`` row refers to."""
    return _store_blobs(conn, contents)


def _ticket_row(
    item: ClaimedItem, parsed: ParsedMessage | None, number: str, parent_id: int | None, now: dt.datetime
) -> dict[str, Any]:
    sender = parsed.sender if parsed else None
    return {
        "number": number,
        "status": "new",
        "priority": None,
        "channel": "email",
        "subject": clean_text(parsed.subject if parsed else "") or "",
        "requester_name": clean_text(sender.name) if sender and sender.name else None,
        "requester_email": clean_text(sender.address if sender and sender.address else item.envelope_from)
        or None,
        "requester_phone": None,
        "parent_id": parent_id,
        "created_at": now,
        "updated_at": now,
    }


def _message_row(
    ticket_id: int, entry: ParsedItem, key: str, problems: list[str], now: dt.datetime
) -> dict[str, Any]:
    item, parsed, _ = entry
    row: dict[str, Any] = {
        "ticket_id": ticket_id,
        "direction": "in",
        "channel": item.channel,
        "dedupe_key": key,
        "inbound_item_id": item.id,
        "parse_problems": clean_text(to_json(problems)) if problems else None,
        "created_at": now,
        "sender": item.envelope_from,
        "recipients": None,
        "subject": "",
        "body_text": "",
        "body_html": None,
        "header_message_id": None,
        "in_reply_to": None,
        "header_references": None,
        "sent_at": None,
    }
    if parsed is not None:
        row.update(parsed_message_columns(parsed, item.envelope_from))
    return row


def parsed_message_columns(parsed: ParsedMessage, envelope_from: str | None) -> dict[str, Any]:
    """The ``messages`` columns that come from parsing (also used when re-parsing)."""
    sender = parsed.sender
    return {
        "sender": clean_text(sender.address if sender and sender.address else envelope_from),
        "recipients": clean_text(to_json([a.address for a in [*parsed.to, *parsed.cc] if a.address])),
        "subject": clean_text(parsed.subject) or "",
        "body_text": clean_text(parsed.body_text) or "",
        "body_html": clean_text(parsed.body_html),
        "header_message_id": clean_text(parsed.message_id),
        "in_reply_to": clean_text(parsed.in_reply_to),
        "header_references": clean_text(" ".join(parsed.references)) or None,
        "sent_at": parsed.date if parsed.date and parsed.date.tzinfo else None,
    }


@dataclass(slots=True)
class _Plan:
    """What one entry of a batch becomes."""

    key: str
    decision: Decision | None = None  # None: a duplicate
    existing: int | None = None  # the stored ticket it joins (or follows up, as parent)
    earlier: int | None = None  # the earlier entry of this batch whose ticket it joins
    ticket_id: int | None = None
    number: str | None = None


def _thread_lookups(
    conn: Connection, entries: Sequence[ParsedItem], prefix: str
) -> tuple[dict[str, int], dict[str, int], dict[int, tuple[str, str]]]:
    """Stored Message-IDs and tagged numbers the batch refers to, and those tickets' number and status."""
    ids: set[str] = set()
    numbers: set[str] = set()
    for _, parsed, _ in entries:
        if parsed is not None:
            ids.update(referenced_ids(parsed))
            numbers.update(subject_ticket_numbers(parsed.subject, prefix))
    by_message_id: dict[str, int] = {}
    by_number: dict[str, int] = {}
    id_list, number_list = sorted(ids), sorted(numbers)
    for start in range(0, len(id_list), LOOKUP_CHUNK):
        rows = conn.execute(
            select(_messages.c.header_message_id, _messages.c.ticket_id).where(
                _messages.c.header_message_id.in_(id_list[start : start + LOOKUP_CHUNK])
            )
        )
        for row in rows:
            by_message_id.setdefault(row.header_message_id, row.ticket_id)
    for start in range(0, len(number_list), LOOKUP_CHUNK):
        rows = conn.execute(
            select(_tickets.c.number, _tickets.c.id).where(
                _tickets.c.number.in_(number_list[start : start + LOOKUP_CHUNK])
            )
        )
        by_number.update({row.number: row.id for row in rows})
    ticket_ids = sorted({*by_message_id.values(), *by_number.values()})
    tickets: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ticket_ids), LOOKUP_CHUNK):
        rows = conn.execute(
            select(_tickets.c.id, _tickets.c.number, _tickets.c.status).where(
                _tickets.c.id.in_(ticket_ids[start : start + LOOKUP_CHUNK])
            )
        )
        tickets.update({row.id: (row.number, row.status) for row in rows})
    return by_message_id, by_number, tickets


def _plan_batch(conn: Connection, entries: Sequence[ParsedItem], settings: Settings) -> list[_Plan]:
    """Decide, in arrival order, what each entry becomes (duplicate, new, join, reopen, follow-up)."""
    prefix = settings.tickets.number_prefix
    keys = [dedupe_key(parsed, item.raw_sha256) for item, parsed, _ in entries]
    stored = find_stored(conn, keys)
    by_message_id, by_number, tickets = _thread_lookups(conn, entries, prefix)
    status_now = {ticket_id: status for ticket_id, (_, status) in tickets.items()}
    plans: list[_Plan] = []
    first_with_key: dict[str, int] = {}
    earlier_message_ids: dict[str, int] = {}
    for index, ((_, parsed, _), key) in enumerate(zip(entries, keys, strict=True)):
        plan = _Plan(key)
        plans.append(plan)
        if key in stored:
            plan.ticket_id, plan.number = stored[key]
            continue
        if key in first_with_key:
            plan.earlier = first_with_key[key]
            continue
        first_with_key[key] = index
        plan.decision = Decision.NEW
        if parsed is not None:
            references = referenced_ids(parsed)
            for message_id in references:
                if message_id in by_message_id:
                    plan.existing = by_message_id[message_id]
                    break
                if message_id in earlier_message_ids:
                    plan.earlier = earlier_message_ids[message_id]
                    break
            if plan.existing is None and plan.earlier is None:
                plan.existing = first_match(subject_ticket_numbers(parsed.subject, prefix), by_number)
            if parsed.message_id:
                earlier_message_ids.setdefault(parsed.message_id, index)
        if plan.existing is not None:
            plan.decision = decide(status_now.get(plan.existing))
            plan.number = tickets[plan.existing][0]  # overwritten by the new number for a follow-up
            if plan.decision is Decision.REOPEN:
                status_now[plan.existing] = "open"
        elif plan.earlier is not None:
            plan.decision = Decision.JOIN
    return plans


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
}


def _with_deadlines(conn: Connection, ticket_rows: Sequence[dict[str, Any]], settings: Settings) -> None:
    """New tickets are born with their triage deadline (intaked/sla/deadlines.py), so the SLA
    tracker has nothing to catch up on for them."""
    ctx = current_context(conn, settings)
    for row in ticket_rows:
        deadlines = compute(ctx, {**_NOT_YET, **row})
        row.update(deadlines.columns(), sla_status=row["status"], sla_priority=None, sla_occurred_at=None)


def ingest_mail_batch(
    conn: Connection, entries: Sequence[ParsedItem], settings: Settings, now: dt.datetime
) -> list[IngestOutcome]:
    """Store a batch in arrival order: new tickets, replies threaded into their tickets, duplicates
    recognised; then finish every item in the ledger (fenced by its claim token)."""
    plans = _plan_batch(conn, entries, settings)
    opening = [i for i, plan in enumerate(plans) if plan.decision in (Decision.NEW, Decision.FOLLOW_UP)]
    tickets = settings.tickets
    periods = [
        ticket_period(tickets.number_prefix, entries[i][0].received_at, tickets.timezone) for i in opening
    ]
    numbers = allocate_ticket_numbers(conn, periods)
    ticket_rows = [
        _ticket_row(
            entries[i][0],
            entries[i][1],
            numbers[n],
            plans[i].existing if plans[i].decision is Decision.FOLLOW_UP else None,
            now,
        )
        for n, i in enumerate(opening)
    ]
    routed = _route_new_tickets(entries, opening, ticket_rows, settings)
    if ticket_rows:
        _with_deadlines(conn, ticket_rows, settings)
    new_ids = [row.id for row in conn.execute(_INSERT_TICKETS, ticket_rows)] if ticket_rows else []
    for n, i in enumerate(opening):
        plans[i].ticket_id, plans[i].number = new_ids[n], numbers[n]
    for plan in plans:  # in order: an earlier entry is always resolved before a later one
        if plan.ticket_id is not None:
            continue
        if plan.earlier is not None:
            plan.ticket_id, plan.number = plans[plan.earlier].ticket_id, plans[plan.earlier].number
        elif plan.existing is not None:
            plan.ticket_id = plan.existing

    storing = [i for i, plan in enumerate(plans) if plan.decision is not None]
    problems = {i: _problems(entries[i]) for i in storing}
    message_rows = [_message_row(_id(plans[i]), entries[i], plans[i].key, problems[i], now) for i in storing]
    message_ids = [row.id for row in conn.execute(_INSERT_MESSAGES, message_rows)] if message_rows else []
    store_attachments(conn, [(message_ids[n], entries[i][1]) for n, i in enumerate(storing)])
    _touch_tickets(conn, plans, now)
    events = _event_rows(entries, plans, storing, ticket_rows, opening, problems, now)
    events += _routed_events(plans, routed, now)
    events += _acknowledge(
        conn, entries, plans, storing, dict(zip(opening, ticket_rows, strict=True)), settings, now
    )
    if events:
        conn.execute(_INSERT_EVENTS, events)
    _page_trusted_suggestions(conn, ticket_rows, new_ids, settings, now)

    outcomes: list[IngestOutcome] = []
    finish_rows = []
    for (item, parsed, _), plan in zip(entries, plans, strict=True):
        state = "duplicate" if plan.decision is None else "done"
        finish_rows.append(
            {"item_id": item.id, "token": item.token, "new_state": state, "tid": _id(plan), "now": now}
        )
        outcomes.append(
            IngestOutcome(
                state,
                _id(plan),
                plan.number or "",
                parsed.message_id if parsed else None,
                item.id,
                plan.decision.value if plan.decision else "duplicate",
            )
        )
    result = conn.execute(_FINISH_ITEMS, finish_rows)
    if result.rowcount != len(finish_rows):
        raise ClaimLost(f"{len(finish_rows) - result.rowcount} item(s) of this batch were taken over")
    return outcomes


def _page_trusted_suggestions(
    conn: Connection,
    ticket_rows: Sequence[dict[str, Any]],
    ticket_ids: Sequence[int],
    settings: Settings,
    now: dt.datetime,
) -> None:
    """A P1/P2 suggested by a trusted source pages QRC in this same transaction, marked
    unconfirmed until a person sets the priority (intaked/paging/engine.py); without a policy for
    it the ticket gets a ``page_not_started`` event instead."""
    for row, ticket_id in zip(ticket_rows, ticket_ids, strict=True):
        if row.get("suggestion_trusted") and row.get("suggested_priority") in PAGED_PRIORITIES:
            start_page(
                conn,
                settings,
                ticket_id,
                row["suggested_priority"],
                reason=f"trusted suggestion ({row.get('suggested_by') or 'routing'})",
                unconfirmed=True,
                actor="intaked",
                now=now,
            )


def _route_new_tickets(
    entries: Sequence[ParsedItem],
    opening: Sequence[int],
    ticket_rows: Sequence[dict[str, Any]],
    settings: Settings,
) -> dict[int, RoutedReport]:
    """Routing rules, directory and trust for each new ticket (intaked/routing/decide.py): sets
    the routing columns on its row (before its deadlines, so a routed team's calendar counts);
    returns the outcome per entry index."""
    routed: dict[int, RoutedReport] = {}
    for i, row in zip(opening, ticket_rows, strict=True):
        item, parsed, _ = entries[i]
        report = route_mail(settings, parsed, item.envelope_from, item.envelope_to)
        columns = report.ticket_columns(row["requester_name"], row["requester_phone"])
        row.update(
            {key: clean_text(value) if isinstance(value, str) else value for key, value in columns.items()}
        )
        routed[i] = report
    return routed


def _routed_events(
    plans: Sequence[_Plan], routed: dict[int, RoutedReport], now: dt.datetime
) -> list[dict[str, Any]]:
    """One ``routed`` event per new ticket where a rule matched or the directory knew the requester."""
    return [
        {
            "ticket_id": _id(plans[i]),
            "at": now,
            "actor": ACTOR,
            "kind": "routed",
            "before": None,
            "after": None,
            "detail": clean_text(to_json(report.event_detail())),
        }
        for i, report in routed.items()
        if report.worth_an_event
    ]


def _acknowledge(
    conn: Connection,
    entries: Sequence[ParsedItem],
    plans: Sequence[_Plan],
    storing: Sequence[int],
    ticket_rows: dict[int, dict[str, Any]],
    settings: Settings,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Queue acknowledgements for the new tickets (same transaction); events for each decision."""
    candidates = []
    for i in storing:
        item, parsed, _ = entries[i]
        plan = plans[i]
        row = ticket_rows.get(i)
        sender = parsed.sender if parsed else None
        candidates.append(
            AckCandidate(
                ticket_id=_id(plan),
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
            )
        )
    return [
        {
            "ticket_id": event["ticket_id"],
            "at": now,
            "actor": ACTOR,
            "kind": event["kind"],
            "before": None,
            "after": None,
            "detail": clean_text(to_json(event["detail"])),
        }
        for event in queue_acknowledgements(conn, candidates, settings, now)
    ]


def _problems(entry: ParsedItem) -> list[str]:
    _, parsed, failure = entry
    return [*(parsed.problems if parsed else []), *([failure] if failure else [])]


def _id(plan: _Plan) -> int:
    assert plan.ticket_id is not None, "every plan is resolved to a ticket before use"
    return plan.ticket_id


def store_attachments(conn: Connection, messages: Sequence[tuple[int, ParsedMessage | None]]) -> None:
    """Store the parsed attachments of each (message row id, parsed message), bytes in ``blobs``."""
    rows: list[dict[str, Any]] = []
    contents: list[bytes] = []
    for message_id, parsed in messages:
        for attachment in parsed.attachments if parsed else []:
            contents.append(attachment.content)
            rows.append(
                {
                    "message_id": message_id,
                    "filename": clean_text(attachment.filename) or "attachment",
                    "content_type": (clean_text(attachment.content_type) or "application/octet-stream")[:255],
                    "size": len(attachment.content),
                    "storage": "blobs",
                    "content_id": clean_text(attachment.content_id),
                    "inline": attachment.inline,
                }
            )
    if rows:
        for row, digest in zip(rows, _store_blobs(conn, contents), strict=True):
            row["sha256"] = digest
        conn.execute(_INSERT_ATTACHMENTS, rows)


def _touch_tickets(conn: Connection, plans: Sequence[_Plan], now: dt.datetime) -> None:
    reopened = sorted({_id(p) for p in plans if p.decision is Decision.REOPEN})
    joined = sorted({_id(p) for p in plans if p.decision is Decision.JOIN and p.existing is not None})
    if reopened:
        conn.execute(
            update(_tickets).where(_tickets.c.id.in_(reopened)).values(status="open", updated_at=now)
        )
    if joined:
        conn.execute(update(_tickets).where(_tickets.c.id.in_(joined)).values(updated_at=now))


def _event_rows(
    entries: Sequence[ParsedItem],
    plans: Sequence[_Plan],
    storing: Sequence[int],
    ticket_rows: Sequence[dict[str, Any]],
    opening: Sequence[int],
    problems: dict[int, list[str]],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    rows_by_entry = dict(zip(opening, ticket_rows, strict=True))
    events: list[dict[str, Any]] = []

    def add(ticket_id: int, kind: str, *, before: Any = None, after: Any = None, detail: Any = None) -> None:
        events.append(
            {
                "ticket_id": ticket_id,
                "at": now,
                "actor": ACTOR,
                "kind": kind,
                "before": None if before is None else to_json(before),
                "after": None if after is None else to_json(after),
                "detail": None if detail is None else clean_text(to_json(detail)),
            }
        )

    for i in storing:
        item, parsed, _ = entries[i]
        plan = plans[i]
        ticket_id = _id(plan)
        via = {
            "via": item.channel,
            "inbound_item": item.id,
            "message_id": parsed.message_id if parsed else None,
        }
        if i in rows_by_entry:
            row = rows_by_entry[i]
            after = {
                "number": row["number"],
                "status": "new",
                "channel": "email",
                "subject": row["subject"],
                "requester_email": row["requester_email"],
                **via,
            }
            if plan.decision is Decision.FOLLOW_UP:
                after["parent_id"] = plan.existing
            add(ticket_id, "created", after=after)
        else:
            sender = parsed.sender.address if parsed and parsed.sender else item.envelope_from
            add(
                ticket_id,
                "message_added",
                after={
                    "from": sender,
                    "subject": parsed.subject if parsed else "",
                    "threaded_by": "reply" if plan.earlier is not None else "lookup",
                    **via,
                },
            )
            if plan.decision is Decision.REOPEN:
                add(
                    ticket_id,
                    "reopened",
                    before={"status": "resolved"},
                    after={"status": "open"},
                    detail={"reason": "the requester replied", **via},
                )
        if plan.decision is Decision.FOLLOW_UP and plan.existing is not None:
            add(
                plan.existing,
                "follow_up_opened",
                after={"ticket_id": ticket_id, "number": plan.number, **via},
            )
        if problems[i]:
            add(ticket_id, "parse_problems", detail=problems[i])
    return events
