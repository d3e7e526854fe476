"""The ``messages``, ``attachments`` and ``blobs`` rows of stored mail (also used when
re-parsing, intaked/intake/reprocess.py), and the parse problems a message is stored with."""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert

from intaked.intake.dedupe import REUSE_PROBLEM
from intaked.intake.planning import ParsedItem, Plan
from intaked.parsing import ParsedMessage
from intaked.store.dialect import insert_or_merge
from intaked.store.models import attachment_table, blob_table, message_table
from intaked.tickets.events import clean_text, to_json

_blobs = blob_table
_messages = message_table
_INSERT_MESSAGES = insert(_messages).returning(_messages.c.id, sort_by_parameter_order=True)
_INSERT_ATTACHMENTS = insert(attachment_table)


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


def message_row(
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


def problems(entry: ParsedItem) -> list[str]:
    _, parsed, failure = entry
    return [*(parsed.problems if parsed else []), *([failure] if failure else [])]


def reused_on(plans: Sequence[Plan], plan: Plan) -> str | None:
    """The number of the ticket already holding a different mail with this plan's Message-ID."""
    return plans[plan.reused_entry].number if plan.reused_entry is not None else plan.reused_number


def reuse_problem(entry: ParsedItem, plans: Sequence[Plan], index: int) -> list[str]:
    """The ``message_id_reused`` problem of a different mail stored under a reused Message-ID."""
    number = reused_on(plans, plans[index])
    if number is None:
        return []
    parsed = entry[1]
    message_id = parsed.message_id if parsed else None
    return [
        f"{REUSE_PROBLEM}: Message-ID <{message_id}> is already on ticket {number} with different "
        "content; stored as a separate message"
    ]


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


def insert_messages(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert the ``messages`` rows (one ``executemany``); their ids, in order."""
    return [row.id for row in conn.execute(_INSERT_MESSAGES, list(rows))] if rows else []
