"""The intake ledger: claiming captured items, fencing, retries and quarantine (sync, DB thread).

A worker claims a batch (state ``processing``, ``attempts + 1``, a fresh claim token in
``claimed_by``) in its own short transaction, so a message that crashes the process is counted
and, after ``intake.max_attempts`` tries, quarantined for a person instead of looping forever.
The transaction that creates the ticket also marks the item done *only if the claim token still
matches* (a fencing token): a second worker that recovered the item meanwhile loses nothing and
doubles nothing. The claims of a worker that died return to ``received`` within seconds
(intaked/store/liveness.py); a worker the store failed under hands its claims back itself
(:func:`release_items`), without counting the attempt; ``intake.claim_timeout_seconds`` is only
for a worker that is alive but hung. An item that was claimed before and not finished is claimed
alone, never in a batch: when a process dies in the middle of a batch, the next attempts tell the
message that kills it from the innocent ones, and only its own attempts count towards quarantine.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, or_, select, update

from intaked.store.claims import claim_due_rows, release_claim
from intaked.store.engine import read_only
from intaked.store.liveness import abandoned, any_abandoned
from intaked.store.models import inbound_item_table
from intaked.store.settle import Unsettled
from intaked.store.types import utcnow

_items = inbound_item_table


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """A ledger item claimed for processing, with its raw bytes decompressed."""

    id: int
    channel: str
    raw: bytes
    raw_sha256: str
    envelope_from: str | None
    envelope_to: list[str]
    received_at: dt.datetime
    attempts: int
    token: str


def decompress_raw(data: bytes, encoding: str) -> bytes:
    if encoding == "zlib":
        return zlib.decompress(data)
    if encoding == "identity":
        return data
    raise ValueError(f"unknown raw_encoding {encoding!r}")


def claim_batch(
    engine: Engine, limit: int, now: dt.datetime | None = None, unsettled: Unsettled | None = None
) -> list[ClaimedItem]:
    """Claim up to ``limit`` items that are due, oldest first, and commit the claim; an item tried
    before goes alone (see the module's docstring)."""
    now = now or utcnow()
    retried = [_items.c.attempts > 0]
    with read_only(engine).connect() as conn:  # a look without the write lock: usually none
        any_retried = conn.execute(
            select(_items.c.id)
            .where(
                _items.c.state == "received",
                or_(_items.c.next_attempt_at.is_(None), _items.c.next_attempt_at <= now),
                *retried,
            )
            .limit(1)
        ).first()
    token, rows = "", list[Row[Any]]()
    if any_retried:
        token, rows = claim_due_rows(
            engine,
            _items,
            ready="received",
            working="processing",
            limit=1,
            now=now,
            where=retried,
            unsettled=unsettled,
        )
    if not rows:
        token, rows = claim_due_rows(
            engine,
            _items,
            ready="received",
            working="processing",
            limit=limit,
            now=now,
            where=[_items.c.attempts == 0],
            unsettled=unsettled,
        )
    return [
        ClaimedItem(
            id=row.id,
            channel=row.channel,
            raw=decompress_raw(row.raw, row.raw_encoding),
            raw_sha256=row.raw_sha256,
            envelope_from=row.envelope_from,
            envelope_to=json.loads(row.envelope_to) if row.envelope_to else [],
            received_at=row.received_at,
            attempts=row.attempts + 1,
            token=token,
        )
        for row in rows
    ]


def finish_item(
    conn: Connection, item: ClaimedItem, *, state: str, ticket_id: int | None, now: dt.datetime
) -> bool:
    """Mark ``item`` done/duplicate in the caller's transaction; False if its claim was lost."""
    result = conn.execute(
        update(_items)
        .where(
            _items.c.id == item.id,
            _items.c.state == "processing",
            _items.c.claimed_by == item.token,
        )
        .values(state=state, ticket_id=ticket_id, processed_at=now, last_error=None)
    )
    return result.rowcount == 1


def record_failure(
    engine: Engine,
    item: ClaimedItem,
    error: str,
    *,
    max_attempts: int,
    retry_base_seconds: float,
    now: dt.datetime | None = None,
) -> str:
    """Put a failed item back for a later retry (with backoff), or quarantine it; returns the state."""
    now = now or utcnow()
    quarantine = item.attempts >= max_attempts
    delay = retry_base_seconds * (2 ** (item.attempts - 1)) * random.uniform(0.8, 1.2)
    state = "quarantined" if quarantine else "received"
    with engine.begin() as conn:
        conn.execute(
            update(_items)
            .where(_items.c.id == item.id, _items.c.claimed_by == item.token)
            .values(
                state=state,
                last_error=error[:4000],
                next_attempt_at=None if quarantine else now + dt.timedelta(seconds=delay),
                claimed_by=None,
                claimed_at=None,
            )
        )
    return state


def recover_abandoned_claims(
    engine: Engine,
    *,
    max_attempts: int,
    lease_seconds: float,
    timeout_seconds: float,
    now: dt.datetime | None = None,
) -> int:
    """Return the items whose worker died (intaked/store/liveness.py) or hung for longer than
    ``timeout_seconds`` to ``received``, or quarantine those claimed ``max_attempts`` times
    already (did they kill their worker?); returns how many were touched."""
    now = now or utcnow()
    base = abandoned(
        _items, working="processing", now=now, lease_seconds=lease_seconds, timeout_seconds=timeout_seconds
    )
    if not any_abandoned(engine, _items, base):
        return 0
    with engine.begin() as conn:
        quarantined = conn.execute(
            update(_items)
            .where(base, _items.c.attempts >= max_attempts)
            .values(
                state="quarantined",
                last_error="claimed too many times without finishing (did the worker crash on it?)",
                claimed_by=None,
                claimed_at=None,
            )
        ).rowcount
        requeued = conn.execute(
            update(_items)
            .where(base)
            .values(state="received", next_attempt_at=None, claimed_by=None, claimed_at=None)
        ).rowcount
    return int(quarantined) + int(requeued)


def release_items(engine: Engine, items: list[ClaimedItem]) -> int:
    """Hand back claimed items this worker could not finish because the store failed under it:
    ``received`` again at once, the attempt not counted."""
    count = 0
    for token in sorted({item.token for item in items}):
        ids = [item.id for item in items if item.token == token]
        count += release_claim(engine, _items, token=token, ready="received", working="processing", ids=ids)
    return count
