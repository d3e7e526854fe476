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
from intaked.parsing import ParsedMessage
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


def _json(value: Any) -> str:
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


def _ticket_row(
    item: ClaimedItem, parsed: ParsedMessage | None, number: str, now: dt.datetime
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
        "parse_problems": clean_text(_json(problems)) if problems else None,
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
        sender = parsed.sender
        row.update(
            sender=clean_text(sender.address if sender and sender.address else item.envelope_from),
            recipients=clean_text(_json([a.address for a in [*parsed.to, *parsed.cc] if a.address])),
            subject=clean_text(parsed.subject) or "",
            body_text=clean_text(parsed.body_text) or "",
            body_html=clean_text(parsed.body_html),
            header_message_id=clean_text(parsed.message_id),
            in_reply_to=clean_text(parsed.in_reply_to),
            header_references=clean_text(" ".join(parsed.references)) or None,
            sent_at=parsed.date if parsed.date and parsed.date.tzinfo else None,
        )
    return row


def ingest_mail_batch(
    conn: Connection, entries: Sequence[ParsedItem], settings: Settings, now: dt.datetime
) -> list[IngestOutcome]:
    """Store every entry as a new ticket or a recognised duplicate, and finish them in the ledger."""
    keys = [dedupe_key(parsed, item.raw_sha256) for item, parsed, _ in entries]
    stored = find_stored(conn, keys)
    new: list[int] = []  # indexes into entries that open a ticket
    first_with_key: dict[str, int] = {}
    for index, key in enumerate(keys):
        if key not in stored and key not in first_with_key:
            first_with_key[key] = index
            new.append(index)

    tickets = settings.tickets
    periods = [ticket_period(tickets.number_prefix, entries[i][0].received_at, tickets.timezone) for i in new]
    numbers = allocate_ticket_numbers(conn, periods)
    ticket_rows = [_ticket_row(entries[i][0], entries[i][1], numbers[n], now) for n, i in enumerate(new)]
    ticket_ids = [row.id for row in conn.execute(_INSERT_TICKETS, ticket_rows)] if ticket_rows else []
    for n, i in enumerate(new):
        stored[keys[i]] = (ticket_ids[n], numbers[n])

    problems = [
        [*(parsed.problems if parsed else []), *([failure] if failure else [])]
        for _, parsed, failure in entries
    ]
    message_rows = [
        _message_row(ticket_ids[n], entries[i], keys[i], problems[i], now) for n, i in enumerate(new)
    ]
    message_ids = [row.id for row in conn.execute(_INSERT_MESSAGES, message_rows)] if message_rows else []

    attachment_rows: list[dict[str, Any]] = []
    attachment_contents: list[bytes] = []
    event_rows: list[dict[str, Any]] = []
    for n, i in enumerate(new):
        item, parsed, _ = entries[i]
        for attachment in parsed.attachments if parsed else []:
            attachment_contents.append(attachment.content)
            attachment_rows.append(
                {
                    "message_id": message_ids[n],
                    "filename": clean_text(attachment.filename) or "attachment",
                    "content_type": (clean_text(attachment.content_type) or "application/octet-stream")[:255],
                    "size": len(attachment.content),
                    "storage": "blobs",
                    "content_id": clean_text(attachment.content_id),
                    "inline": attachment.inline,
                }
            )
        row = ticket_rows[n]
        event_rows.append(
            {
                "ticket_id": ticket_ids[n],
                "at": now,
                "actor": ACTOR,
                "kind": "created",
                "before": None,
                "after": _json(
                    {
                        "number": numbers[n],
                        "status": "new",
                        "channel": "email",
                        "subject": row["subject"],
                        "requester_email": row["requester_email"],
                        "via": item.channel,
                        "inbound_item": item.id,
                    }
                ),
                "detail": None,
            }
        )
        if problems[i]:
            event_rows.append(
                {
                    "ticket_id": ticket_ids[n],
                    "at": now,
                    "actor": ACTOR,
                    "kind": "parse_problems",
                    "before": None,
                    "after": None,
                    "detail": clean_text(_json(problems[i])),
                }
            )
    if attachment_rows:
        for row, digest in zip(attachment_rows, _store_blobs(conn, attachment_contents), strict=True):
            row["sha256"] = digest
        conn.execute(_INSERT_ATTACHMENTS, attachment_rows)
    if event_rows:
        conn.execute(_INSERT_EVENTS, event_rows)

    new_set = set(new)
    outcomes: list[IngestOutcome] = []
    finish_rows = []
    for index, ((item, parsed, _), key) in enumerate(zip(entries, keys, strict=True)):
        state = "done" if index in new_set else "duplicate"
        ticket_id, number = stored[key]
        finish_rows.append(
            {"item_id": item.id, "token": item.token, "new_state": state, "tid": ticket_id, "now": now}
        )
        outcomes.append(
            IngestOutcome(state, ticket_id, number, parsed.message_id if parsed else None, item.id)
        )
    result = conn.execute(_FINISH_ITEMS, finish_rows)
    if result.rowcount != len(finish_rows):
        raise ClaimLost(f"{len(finish_rows) - result.rowcount} item(s) of this batch were taken over")
    return outcomes
