"""Ingest: one parsed mail becomes ticket rows, in the caller's transaction (sync, DB thread).

Every captured item ends as exactly one stored message: a new ticket, or nothing new when the same
message was already stored (same Message-ID, or, without one, the same raw bytes), in which case
the item is marked ``duplicate`` and points at the ticket that has it. A message the parser could
not read still becomes a ticket: its raw bytes stay in the ledger and the problems are recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from intaked.config import Settings
from intaked.intake.ledger import ClaimedItem, finish_item
from intaked.parsing import ParsedMessage
from intaked.store.models import Attachment, Blob, Message, Ticket, TicketEvent
from intaked.store.numbering import next_ticket_number

ACTOR = "intaked"
MAX_KEY_ID_LENGTH = 500

_tickets = Ticket.__table__
_messages = Message.__table__
_attachments = Attachment.__table__
_blobs = Blob.__table__
_events = TicketEvent.__table__


class ClaimLost(Exception):
    """Another worker took this item over; this transaction must not commit."""


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What became of one item."""

    state: str  # "done" or "duplicate"
    ticket_id: int
    ticket_number: str
    message_id: str | None


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


def _store_blob(conn: Connection, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()
    packed = zlib.compress(content, 6)
    encoding = "zlib"
    if len(packed) >= len(content):
        packed, encoding = content, "identity"
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(
        dialect_insert(_blobs)
        .values(sha256=digest, size=len(content), encoding=encoding, data=packed)
        .on_conflict_do_nothing(index_elements=[_blobs.c.sha256])
    )
    return digest


def find_stored(conn: Connection, key: str) -> tuple[int, str] | None:
    """The ticket (id, number) that already holds the message stored under ``key``."""
    row = conn.execute(
        select(_tickets.c.id, _tickets.c.number)
        .join(_messages, _messages.c.ticket_id == _tickets.c.id)
        .where(_messages.c.dedupe_key == key)
    ).first()
    return (row.id, row.number) if row else None


def ingest_mail(
    conn: Connection,
    item: ClaimedItem,
    parsed: ParsedMessage | None,
    parse_failure: str | None,
    settings: Settings,
    now: dt.datetime,
) -> IngestOutcome:
    """Store ``item`` as a new ticket (or recognise it as a duplicate) and finish it in the ledger."""
    key = dedupe_key(parsed, item.raw_sha256)
    existing = find_stored(conn, key)
    if existing is not None:
        if not finish_item(conn, item, state="duplicate", ticket_id=existing[0], now=now):
            raise ClaimLost(f"inbound item {item.id}")
        return IngestOutcome("duplicate", existing[0], existing[1], parsed.message_id if parsed else None)

    problems = list(parsed.problems) if parsed else []
    if parse_failure:
        problems.append(parse_failure)
    sender = parsed.sender if parsed else None
    requester_email = (sender.address if sender and sender.address else item.envelope_from) or None
    requester_name = sender.name if sender and sender.name else None
    subject = clean_text(parsed.subject if parsed else "") or ""
    number = next_ticket_number(
        conn, settings.tickets.number_prefix, item.received_at, settings.tickets.timezone
    )
    ticket_id = conn.execute(
        insert(_tickets)
        .values(
            number=number,
            status="new",
            priority=None,
            channel="email",
            subject=subject,
            requester_name=clean_text(requester_name),
            requester_email=clean_text(requester_email),
            created_at=now,
            updated_at=now,
        )
        .returning(_tickets.c.id)
    ).scalar_one()
    message_id = _insert_message(conn, ticket_id, item, parsed, key, problems, now)
    if parsed:
        for attachment in parsed.attachments:
            digest = _store_blob(conn, attachment.content)
            conn.execute(
                insert(_attachments).values(
                    message_id=message_id,
                    filename=clean_text(attachment.filename) or "attachment",
                    content_type=(clean_text(attachment.content_type) or "application/octet-stream")[:255],
                    size=len(attachment.content),
                    sha256=digest,
                    storage="blobs",
                    content_id=clean_text(attachment.content_id),
                    inline=attachment.inline,
                )
            )
    events = [
        {
            "kind": "created",
            "after": _json(
                {"number": number, "status": "new", "channel": "email", "subject": subject,
                 "requester_email": requester_email, "via": item.channel, "inbound_item": item.id}
            ),
            "detail": None,
        }
    ]
    if problems:
        events.append({"kind": "parse_problems", "after": None, "detail": clean_text(_json(problems))})
    conn.execute(
        insert(_events),
        [{"ticket_id": ticket_id, "at": now, "actor": ACTOR, "before": None, **e} for e in events],
    )
    if not finish_item(conn, item, state="done", ticket_id=ticket_id, now=now):
        raise ClaimLost(f"inbound item {item.id}")
    return IngestOutcome("done", ticket_id, number, parsed.message_id if parsed else None)


def _insert_message(
    conn: Connection,
    ticket_id: int,
    item: ClaimedItem,
    parsed: ParsedMessage | None,
    key: str,
    problems: list[str],
    now: dt.datetime,
) -> int:
    if parsed is None:
        values: dict[str, Any] = {"sender": item.envelope_from, "subject": "", "body_text": ""}
    else:
        sender = parsed.sender
        values = {
            "sender": sender.address if sender and sender.address else item.envelope_from,
            "recipients": _json([a.address for a in [*parsed.to, *parsed.cc] if a.address]),
            "subject": parsed.subject,
            "body_text": parsed.body_text,
            "body_html": parsed.body_html,
            "header_message_id": parsed.message_id,
            "in_reply_to": parsed.in_reply_to,
            "header_references": " ".join(parsed.references) or None,
            "sent_at": parsed.date if parsed.date and parsed.date.tzinfo else None,
        }
    for name, value in list(values.items()):
        if isinstance(value, str):
            values[name] = clean_text(value)
    return int(
        conn.execute(
            insert(_messages)
            .values(
                ticket_id=ticket_id,
                direction="in",
                channel=item.channel,
                dedupe_key=key,
                inbound_item_id=item.id,
                parse_problems=clean_text(_json(problems)) if problems else None,
                created_at=now,
                **values,
            )
            .returning(_messages.c.id)
        ).scalar_one()
    )
