"""The same message, once: the key a message is stored under (its Message-ID, else its raw
digest), the key of a different mail reusing a stored Message-ID, and the lookup of what a batch's
keys already hold (see intaked/intake/ingest.py for the rules)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from intaked.parsing import ParsedMessage
from intaked.parsing.fingerprint import content_digest
from intaked.store.models import inbound_item_table, message_table, ticket_table
from intaked.store.rawbytes import decompress_raw

MAX_KEY_ID_LENGTH = 500
LOOKUP_CHUNK = 500

_tickets = ticket_table
_messages = message_table
_items = inbound_item_table


def dedupe_key(parsed: ParsedMessage | None, raw_sha256: str) -> str:
    """The key under which a message is stored once: its Message-ID, else its raw digest."""
    mid = parsed.message_id.strip() if parsed and parsed.message_id else ""
    if not mid:
        return f"sha256:{raw_sha256}"
    if len(mid) > MAX_KEY_ID_LENGTH:
        return "mid-sha256:" + hashlib.sha256(mid.encode("utf-8", "surrogatepass")).hexdigest()
    return f"mid:{mid}"


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
