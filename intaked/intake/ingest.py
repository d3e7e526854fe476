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
import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from intaked.config import Settings
from intaked.intake.ledger import ClaimedItem
from intaked.intake.rawbytes import decompress_raw
from intaked.outbound.acks import AckCandidate, our_addresses, queue_acknowledgements
from intaked.outbound.loops import machine_mail_reason
from intaked.paging.pages import start_page
from intaked.paging.policy import PAGED_PRIORITIES
from intaked.parsing import ParsedMessage
from intaked.parsing.fingerprint import content_digest
from intaked.routing.decide import RoutedReport, route_mail
from intaked.routing.reply_threading import (
    Decision,
    decide,
    first_match,
    referenced_ids,
    subject_ticket_numbers,
    tag_refusal,
)
from intaked.routing.spam import spam_verdict
from intaked.routing.trust import assess_mail
from intaked.sla.context import current_context
from intaked.sla.deadlines import compute
from intaked.store.dialect import insert_or_merge
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
    message_id_also_on: str | None = None  # a different mail with this Message-ID is on that ticket


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


REUSE_PROBLEM = "message_id_reused"


def content_key(key: str, digest: str) -> str:
    """The key of a different mail reusing the Message-ID stored under ``key``."""
    return f"{key}|content:{digest}"


def same_content(stored: str | None, arriving: str | None) -> bool:
    """Whether two fingerprints say "the same mail"; an unknown one is taken to be the same."""
    return stored is None or arriving is None or stored == arriving


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A stored message found by its dedupe key: the ticket that holds it and its fingerprint."""

    ticket_id: int
    number: str
    content_digest: str | None


def find_stored(conn: Connection, keys: Sequence[str]) -> dict[str, StoredMessage]:
    """For the keys already stored: key → the message stored under it. A row stored before its
    fingerprint existed gets it computed from its raw bytes in the ledger (None if they are gone)."""
    found: dict[str, StoredMessage] = {}
    unknown: dict[int, str] = {}  # inbound item → key, for the rows without a fingerprint
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), LOOKUP_CHUNK):
        chunk = unique[start : start + LOOKUP_CHUNK]
        rows = conn.execute(
            select(
                _messages.c.dedupe_key,
                _messages.c.content_digest,
                _messages.c.inbound_item_id,
                _tickets.c.id,
                _tickets.c.number,
            )
            .join(_tickets, _messages.c.ticket_id == _tickets.c.id)
            .where(_messages.c.dedupe_key.in_(chunk))
        )
        for row in rows:
            found[row.dedupe_key] = StoredMessage(row.id, row.number, row.content_digest)
            if row.content_digest is None and row.inbound_item_id is not None:
                unknown[row.inbound_item_id] = row.dedupe_key
    items = sorted(unknown)
    for start in range(0, len(items), LOOKUP_CHUNK):
        rows = conn.execute(
            select(_items.c.id, _items.c.raw, _items.c.raw_encoding).where(
                _items.c.id.in_(items[start : start + LOOKUP_CHUNK])
            )
        )
        for row in rows:
            if row.raw is not None:
                key = unknown[row.id]
                digest = content_digest(decompress_raw(row.raw, row.raw_encoding))
                found[key] = StoredMessage(found[key].ticket_id, found[key].number, digest)
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
        conn.execute(
            insert_or_merge(conn, _blobs).on_conflict_do_nothing(index_elements=[_blobs.c.sha256]),
            list(rows.values()),
        )
    return digests


def store_blobs(conn: Connection, contents: Sequence[bytes]) -> list[str]:
    """Store ``contents`` in ``blobs`` (once per digest, zlib when it helps), in the caller's
    transaction; returns each one's hex SHA-256, the key its ``attachments`` row refers to."""
    return _store_blobs(conn, contents)


def _ticket_row(
    item: ClaimedItem,
    parsed: ParsedMessage | None,
    number: str,
    parent_id: int | None,
    now: dt.datetime,
    spam: str | None = None,
) -> dict[str, Any]:
    sender = parsed.sender if parsed else None
    return {
        "number": number,
        "status": "spam" if spam else "new",
        "spam_reason": clean_text(spam),
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
        "content_digest": None,
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
        "content_digest": parsed.content_digest,
    }


@dataclass(slots=True)
class _Plan:
    """What one entry of a batch becomes."""

    key: str
    digest: str | None = None  # the content fingerprint
    decision: Decision | None = None  # None: a duplicate
    reused_number: str | None = None  # a different mail with this Message-ID is on this stored ticket
    reused_entry: int | None = None  # ... or is this earlier entry of the batch
    existing: int | None = None  # the stored ticket it joins (or follows up, as parent)
    earlier: int | None = None  # the earlier entry of this batch whose ticket it joins
    ticket_id: int | None = None
    number: str | None = None
    parent: int | None = None  # a new ticket linked to the ticket it named but may not join
    refused: str | None = None  # why its subject tag may not join the tagged ticket
    machine: str | None = None  # why it is machine mail (joins, never changes the ticket)
    spam: str | None = None  # why it is spam (a quarantined ticket of its own)
    parent_number: str | None = None

    @property
    def parent_id(self) -> int | None:
        """The parent of the new ticket this plan opens."""
        return self.existing if self.decision is Decision.FOLLOW_UP else self.parent


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
            select(_messages.c.header_message_id, _messages.c.ticket_id)
            .where(_messages.c.header_message_id.in_(id_list[start : start + LOOKUP_CHUNK]))
            .order_by(_messages.c.id)
        )
        for row in rows:  # a reused Message-ID threads to its earliest stored message
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


def _ticket_addresses(conn: Connection, ticket_ids: Sequence[int]) -> dict[int, set[str]]:
    """The lower-case addresses on each ticket: its requester, and the senders and recipients
    (To/Cc) of its stored messages."""
    found: dict[int, set[str]] = {ticket_id: set() for ticket_id in ticket_ids}
    ids = sorted(found)
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        requesters = conn.execute(
            select(_tickets.c.id, _tickets.c.requester_email).where(_tickets.c.id.in_(chunk))
        )
        for requester in requesters:
            if requester.requester_email:
                found[requester.id].add(requester.requester_email.strip().lower())
        messages = conn.execute(
            select(_messages.c.ticket_id, _messages.c.sender, _messages.c.recipients).where(
                _messages.c.ticket_id.in_(chunk)
            )
        )
        for message in messages:
            addresses = found[message.ticket_id]
            if message.sender:
                addresses.add(message.sender.strip().lower())
            try:
                recipients = json.loads(message.recipients) if message.recipients else []
            except ValueError:
                recipients = []
            if isinstance(recipients, list):
                addresses.update(r.strip().lower() for r in recipients if isinstance(r, str))
    return found


def _unauthenticated(entry: ParsedItem, sender: str | None, settings: Settings) -> str | None:
    """Why our MTA's Authentication-Results do not vouch for this mail's internal From:, None
    when they do or when they are not read (no ``trust.authserv_id``)."""
    if not settings.trust.authserv_id:
        return None
    item, parsed, _ = entry
    fields = parsed.authentication_results if parsed else []
    verdict = assess_mail(settings.trust, sender, item.envelope_from, fields)
    return None if verdict.trusted else verdict.reason


def _plan_threading(
    plan: _Plan,
    entry: ParsedItem,
    tagged: int | None,
    on_ticket: dict[int, set[str]],
    settings: Settings,
    ours: set[str],
) -> None:
    """Machine mail, spam and the trust of a subject tag: what they change in ``plan``, whose
    ``existing`` / ``earlier`` the references already set (``tagged``: the ticket the subject's
    tag names, looked at only when the references found nothing)."""
    item, parsed, _ = entry
    plan.machine = machine_mail_reason(parsed, item.envelope_from)
    plan.spam = spam_verdict(parsed, settings.trust.spam)
    if tagged is not None and plan.existing is None and plan.earlier is None:
        sender = parsed.sender.address if parsed and parsed.sender and parsed.sender.address else None
        if plan.spam:
            plan.refused = "the mail is spam: it never joins a ticket"
        else:
            plan.refused = tag_refusal(
                sender or item.envelope_from,
                on_ticket.get(tagged, set()),
                settings.trust.internal_domains,
                ours,
                _unauthenticated(entry, sender, settings),
            )
        if plan.refused is None:
            plan.existing = tagged
        else:
            plan.parent = tagged
    if plan.spam:  # never threaded: a quarantined ticket of its own, linked to what it named
        plan.parent = plan.parent if plan.parent is not None else plan.existing
        plan.existing = plan.earlier = None


def _plan_batch(conn: Connection, entries: Sequence[ParsedItem], settings: Settings) -> list[_Plan]:
    """Decide, in arrival order, what each entry becomes (duplicate, new, join, reopen, follow-up)."""
    prefix = settings.tickets.number_prefix
    keys = [dedupe_key(parsed, item.raw_sha256) for item, parsed, _ in entries]
    digests = [parsed.content_digest if parsed else None for _, parsed, _ in entries]
    reuse_keys = [
        content_key(key, digest) if digest and key.startswith("mid") else None
        for key, digest in zip(keys, digests, strict=True)
    ]
    raw_keys = [f"sha256:{item.raw_sha256}" for item, _, _ in entries]
    stored = find_stored(conn, [*keys, *(key for key in reuse_keys if key), *raw_keys])
    by_message_id, by_number, tickets = _thread_lookups(conn, entries, prefix)
    on_ticket = _ticket_addresses(conn, sorted(set(by_number.values())))
    ours = our_addresses(settings)
    status_now = {ticket_id: status for ticket_id, (_, status) in tickets.items()}
    plans: list[_Plan] = []
    first_with_key: dict[str, int] = {}
    earlier_message_ids: dict[str, int] = {}
    for index, (_, parsed, _) in enumerate(entries):
        key, digest, reuse_key = keys[index], digests[index], reuse_keys[index]
        plan = _Plan(key, digest)
        plans.append(plan)
        held_by: StoredMessage | int | None = stored.get(key, first_with_key.get(key))
        if held_by is not None and reuse_key is not None:
            held_digest = held_by.content_digest if isinstance(held_by, StoredMessage) else digests[held_by]
            if not same_content(held_digest, digest):  # a different mail reusing the Message-ID
                if isinstance(held_by, StoredMessage):
                    plan.reused_number = held_by.number
                else:
                    plan.reused_entry = held_by
                plan.key = key = reuse_key
                held_by = stored.get(key, first_with_key.get(key))
        if held_by is None:  # the same bytes, stored when no Message-ID could be read (older parser)
            held_by = stored.get(raw_keys[index])
        if isinstance(held_by, StoredMessage):
            plan.ticket_id, plan.number = held_by.ticket_id, held_by.number
            plan.reused_number = plan.reused_entry = None
            continue
        if held_by is not None:
            plan.earlier = held_by
            plan.reused_number = plan.reused_entry = None
            continue
        first_with_key[key] = index
        plan.decision = Decision.NEW
        tagged: int | None = None
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
                tagged = first_match(subject_ticket_numbers(parsed.subject, prefix), by_number)
            if parsed.message_id:
                earlier_message_ids.setdefault(parsed.message_id, index)
        _plan_threading(plan, entries[index], tagged, on_ticket, settings, ours)
        if plan.parent is not None:
            plan.parent_number = tickets[plan.parent][0]
        if plan.existing is not None:
            plan.decision = decide(status_now.get(plan.existing))
            if plan.machine is not None and plan.decision in (Decision.REOPEN, Decision.FOLLOW_UP):
                plan.decision = Decision.JOIN  # machine mail never changes the ticket's status
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
            plans[i].parent_id,
            now,
            plans[i].spam,
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
    problems = {i: [*_problems(entries[i]), *_reuse_problem(entries[i], plans, i)] for i in storing}
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
                _reused_on(plans, plan),
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
        if row["status"] == "spam":
            row["suggestion_trusted"] = False  # spam pages no one, whatever it claims
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
                withheld=f"flagged as spam by our mail server ({plan.spam})" if plan.spam else None,
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


def _reused_on(plans: Sequence[_Plan], plan: _Plan) -> str | None:
    """The number of the ticket already holding a different mail with this plan's Message-ID."""
    return plans[plan.reused_entry].number if plan.reused_entry is not None else plan.reused_number


def _reuse_problem(entry: ParsedItem, plans: Sequence[_Plan], index: int) -> list[str]:
    """The ``message_id_reused`` problem of a different mail stored under a reused Message-ID."""
    number = _reused_on(plans, plans[index])
    if number is None:
        return []
    parsed = entry[1]
    message_id = parsed.message_id if parsed else None
    return [
        f"{REUSE_PROBLEM}: Message-ID <{message_id}> is already on ticket {number} with different "
        "content; stored as a separate message"
    ]


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
                "status": row["status"],
                "channel": "email",
                "subject": row["subject"],
                "requester_email": row["requester_email"],
                **via,
            }
            if plan.parent_id is not None:
                after["parent_id"] = plan.parent_id
            add(ticket_id, "created", after=after)
            if plan.spam:
                add(ticket_id, "spam_flagged", detail={"reason": plan.spam, **via})
            if plan.refused is not None and plan.parent is not None:
                sender = parsed.sender.address if parsed and parsed.sender else item.envelope_from
                add(
                    ticket_id,
                    "tag_not_trusted",
                    detail={
                        "from": sender,
                        "tagged": plan.parent_number,
                        "tagged_ticket_id": plan.parent,
                        "reason": plan.refused,
                        **via,
                    },
                )
            if plan.parent is not None:
                add(
                    plan.parent,
                    "linked_ticket_opened",
                    after={"ticket_id": ticket_id, "number": plan.number, **via},
                    detail={"reason": plan.refused or plan.spam},
                )
        else:
            sender = parsed.sender.address if parsed and parsed.sender else item.envelope_from
            added = {
                "from": sender,
                "subject": parsed.subject if parsed else "",
                "threaded_by": "reply" if plan.earlier is not None else "lookup",
                **via,
            }
            if plan.machine is not None:
                added["machine"] = plan.machine  # changes nothing on the ticket
            add(ticket_id, "message_added", after=added)
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
