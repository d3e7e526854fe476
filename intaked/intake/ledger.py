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

A batch is bounded by bytes as well as by count (``intake.batch_max_bytes``): the sizes of the due
items are read first (``raw_size``, without their raw bytes), and only the items that fit are
claimed and loaded, always at least one. Their raw bytes stay compressed as stored until the one
message being parsed is unpacked (intaked/intake/parsepool.py).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update

from intaked.store.claims import ClaimStates, claim_due_rows, recover_abandoned_rows, release_claims
from intaked.store.engine import read_only
from intaked.store.models import inbound_item_table
from intaked.store.rawbytes import PackedRaw
from intaked.store.settle import Unsettled
from intaked.store.types import utcnow

_items = inbound_item_table

#: Captured items wait in ``received`` and are processed under a claim in ``processing``.
ITEM_CLAIMS = ClaimStates(_items, ready="received", working="processing")
#: Why an item whose claims kept being abandoned was quarantined.
_CLAIMED_TOO_OFTEN = "claimed too many times without finishing (did the worker crash on it?)"
#: How often a claim is tried again when another worker took every item it had sized.
CLAIM_TRIES = 3


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """A ledger item claimed for processing; its raw bytes as stored (compressed) until parsed."""

    id: int
    channel: str
    packed: PackedRaw | None  # None once parsed: the processor drops the bytes (see without_raw)
    raw_size: int
    raw_sha256: str
    envelope_from: str | None
    envelope_to: list[str]
    received_at: dt.datetime
    attempts: int
    token: str

    @property
    def raw(self) -> bytes:
        """The exact bytes received, unpacked on each call (the item keeps them compressed)."""
        if self.packed is None:
            raise ValueError(f"inbound item {self.id}: its raw bytes were dropped once parsed")
        return self.packed.unpack()

    def without_raw(self) -> ClaimedItem:
        """The same claim without its bytes: what storing the parsed message still needs."""
        return replace(self, packed=None)


def claim_batch(
    engine: Engine,
    limit: int,
    now: dt.datetime | None = None,
    unsettled: Unsettled | None = None,
    *,
    max_bytes: int | None = None,
) -> list[ClaimedItem]:
    """Claim up to ``limit`` items that are due, oldest first, whose raw sizes add up to at most
    ``max_bytes`` (always at least one item; None: no byte limit), and commit the claim; an item
    tried before goes alone (see the module's docstring)."""
    now = now or utcnow()
    retried = [_items.c.attempts > 0]
    with read_only(engine).connect() as conn:  # a look without the write lock: usually none
        any_retried = conn.execute(
            select(_items.c.id).where(*ITEM_CLAIMS.due(now), *retried).limit(1)
        ).first()
    token, rows = "", list[Row[Any]]()
    if any_retried:
        token, rows = claim_due_rows(
            engine,
            ITEM_CLAIMS,
            limit=1,
            now=now,
            where=retried,
            unsettled=unsettled,
        )
    if not rows:
        token, rows = _claim_fresh(engine, limit, now, max_bytes, unsettled)
    return [_claimed_item(row, token) for row in rows]


def ids_within_budget(sizes: Sequence[tuple[int, int]], max_bytes: int) -> list[int]:
    """The ids of the leading (id, size) pairs whose sizes add up to at most ``max_bytes``; the
    first always, however large (a message over the budget goes alone)."""
    taken: list[int] = []
    total = 0
    for item_id, size in sizes:
        total += size
        if taken and total > max_bytes:
            break
        taken.append(item_id)
    return taken


def _claim_fresh(
    engine: Engine, limit: int, now: dt.datetime, max_bytes: int | None, unsettled: Unsettled | None
) -> tuple[str, list[Row[Any]]]:
    """Claim items never tried before: the sizes first, then only the items that fit the budget
    (their raw bytes are read only for those). Another worker may take some of them in between:
    the claim then holds fewer, never more."""
    fresh = [_items.c.attempts == 0]
    if max_bytes is None:
        return claim_due_rows(
            engine,
            ITEM_CLAIMS,
            limit=limit,
            now=now,
            where=fresh,
            unsettled=unsettled,
        )
    for _ in range(CLAIM_TRIES):
        with read_only(engine).connect() as conn:
            sizes = conn.execute(
                select(_items.c.id, _items.c.raw_size)
                .where(*ITEM_CLAIMS.due(now), *fresh)
                .order_by(_items.c.id)
                .limit(limit)
            ).all()
        if not sizes:
            break
        ids = ids_within_budget([(row.id, row.raw_size) for row in sizes], max_bytes)
        token, rows = claim_due_rows(
            engine,
            ITEM_CLAIMS,
            limit=len(ids),
            now=now,
            where=[*fresh, _items.c.id.in_(ids)],
            unsettled=unsettled,
        )
        if rows:
            return token, rows
    return "", []


def _claimed_item(row: Row[Any], token: str) -> ClaimedItem:
    return ClaimedItem(
        id=row.id,
        channel=row.channel,
        packed=PackedRaw(bytes(row.raw), row.raw_encoding, row.raw_size),
        raw_size=row.raw_size,
        raw_sha256=row.raw_sha256,
        envelope_from=row.envelope_from,
        envelope_to=json.loads(row.envelope_to) if row.envelope_to else [],
        received_at=row.received_at,
        attempts=row.attempts + 1,
        token=token,
    )


def finish_item(
    conn: Connection, item: ClaimedItem, *, state: str, ticket_id: int | None, now: dt.datetime
) -> bool:
    """Mark ``item`` done/duplicate in the caller's transaction; False if its claim was lost."""
    result = conn.execute(
        update(_items)
        .where(ITEM_CLAIMS.fence(item.id, item.token))
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
    return recover_abandoned_rows(
        engine,
        ITEM_CLAIMS,
        now=now or utcnow(),
        lease_seconds=lease_seconds,
        timeout_seconds=timeout_seconds,
        quarantine=(max_attempts, {"state": "quarantined", "last_error": _CLAIMED_TOO_OFTEN}),
    )


def release_items(engine: Engine, items: list[ClaimedItem]) -> int:
    """Hand back claimed items this worker could not finish because the store failed under it:
    ``received`` again at once, the attempt not counted."""
    return release_claims(engine, ITEM_CLAIMS, [(item.token, item.id) for item in items])
