"""The outbox table's life cycle (sync, on a database thread).

``pending`` rows are written by :func:`enqueue` inside the transaction that caused them, with an
idempotency key so one cause queues one row. A dispatcher claims due rows (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so several dispatchers never take the same row; SQLite has one writer),
marking them ``sending`` with a claim token, then sends, then records the outcome only if its
claim still holds (a fencing token): ``sent`` (with the provider's id, and the mail stored as an
outbound message of the ticket), back to ``pending`` after a temporary failure (exponential
backoff with jitter), or ``failed`` after a permanent one (recorded on the ticket). A dispatcher
that dies mid-send leaves a ``sending`` row that a live one takes over within seconds
(intaked/store/liveness.py): the mail may then go out twice, never zero times. A dispatcher that
only lost the database keeps the outcome in memory and records it once the store is back
(intaked/store/settle.py): a database outage alone repeats nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from intaked.config import Settings
from intaked.outbound.claimed import ACTOR, OUTBOX_CLAIMS, OutboxRow, Within, fenced
from intaked.store.claims import claim_due_rows, recover_abandoned_rows, release_claims
from intaked.store.dialect import insert_or_merge
from intaked.store.liveness import Recovery
from intaked.store.models import message_table, outbox_table, ticket_event_table
from intaked.store.settle import OutcomeHeld, Unsettled
from intaked.store.types import utcnow

__all__ = [
    "ACTOR",
    "UNKNOWN_OUTCOME_AFTER_CLAIM",
    "OutboxRow",
    "Within",
    "claim_due",
    "defer",
    "enqueue",
    "hand_back",
    "mark_cancelled",
    "mark_failed",
    "mark_sent",
    "recent_counts",
    "recover_abandoned",
    "recovery",
    "release_rows",
]

UNKNOWN_OUTCOME_AFTER_CLAIM = "outcome unknown: the sender's claim expired or it restarted"


def enqueue(conn: Connection, rows: Sequence[dict[str, Any]], now: dt.datetime) -> int:
    """Queue rows (kind, purpose, idempotency_key, ticket_id, recipient, payload) in the caller's
    transaction; a row whose idempotency key is already queued is skipped. Returns how many were new."""
    if not rows:
        return 0
    values = [
        {
            "kind": row["kind"],
            "purpose": row["purpose"],
            "idempotency_key": row["idempotency_key"],
            "ticket_id": row.get("ticket_id"),
            "recipient": row["recipient"],
            "state": "pending",
            "attempts": 0,
            "payload": json.dumps(row["payload"], ensure_ascii=False),
            "created_at": now,
        }
        for row in rows
    ]
    result = conn.execute(
        insert_or_merge(conn, outbox_table)
        .on_conflict_do_nothing(index_elements=[outbox_table.c.idempotency_key])
        .returning(outbox_table.c.id),
        values,
    )
    return len(result.all())


def recent_counts(
    conn: Connection, purpose: str, recipients: Sequence[str], since: dt.datetime
) -> dict[str, int]:
    """How many rows of ``purpose`` each recipient got queued since ``since`` (for rate limits)."""
    if not recipients:
        return {}

    rows = conn.execute(
        select(outbox_table.c.recipient, func.count())
        .where(
            outbox_table.c.purpose == purpose,
            outbox_table.c.recipient.in_(sorted(set(recipients))),
            outbox_table.c.created_at >= since,
        )
        .group_by(outbox_table.c.recipient)
    )
    return {recipient: int(count) for recipient, count in rows}


def claim_due(engine: Engine, kind: str, limit: int, unsettled: Unsettled | None = None) -> list[OutboxRow]:
    """Claim up to ``limit`` due rows of ``kind`` (oldest first) and commit the claim."""
    token, rows = claim_due_rows(
        engine,
        OUTBOX_CLAIMS,
        limit=limit,
        now=utcnow(),
        where=[outbox_table.c.kind == kind],
        unsettled=unsettled,
    )
    return [
        OutboxRow(
            id=r.id,
            kind=r.kind,
            purpose=r.purpose,
            ticket_id=r.ticket_id,
            recipient=r.recipient,
            payload=json.loads(r.payload),
            attempts=r.attempts + 1,
            created_at=r.created_at,
            token=token,
        )
        for r in rows
    ]


def _event(conn: Connection, row: OutboxRow, kind: str, detail: dict[str, Any], now: dt.datetime) -> None:
    if row.ticket_id is not None:
        conn.execute(
            ticket_event_table.insert().values(
                ticket_id=row.ticket_id,
                at=now,
                actor=ACTOR,
                kind=kind,
                detail=json.dumps(detail, ensure_ascii=False),
            )
        )


def mark_sent(
    engine: Engine,
    row: OutboxRow,
    provider_id: str | None,
    now: dt.datetime | None = None,
    *,
    within: Within | None = None,
) -> bool:
    """Record a delivered row; for a mail, store it as the ticket's outbound message. False: claim lost.
    ``within`` runs in the same transaction once the claim is known to hold."""
    now = now or utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            update(outbox_table)
            .where(fenced(row))
            .values(state="sent", provider_id=provider_id, sent_at=now, last_error=None, claimed_by=None)
        )
        if result.rowcount != 1:
            return False
        if within is not None:
            within(conn)
        if row.kind == "mail" and row.ticket_id is not None:
            payload = row.payload
            conn.execute(
                message_table.insert().values(
                    ticket_id=row.ticket_id,
                    direction="out",
                    channel="smtp",
                    sender=payload["from"],
                    recipients=json.dumps([payload["to"]]),
                    subject=payload["subject"],
                    body_text=payload["text"],
                    body_html=payload.get("html"),
                    header_message_id=payload["message_id"],
                    in_reply_to=payload.get("in_reply_to"),
                    header_references=" ".join(payload.get("references") or []) or None,
                    sent_at=now,
                    created_at=now,
                )
            )
        _event(
            conn,
            row,
            f"{row.purpose}_sent",
            {"to": row.recipient, "outbox": row.id, "provider_id": provider_id, "attempts": row.attempts},
            now,
        )
    return True


def defer(
    engine: Engine,
    rows: Sequence[OutboxRow],
    error: str,
    *,
    base_seconds: float,
    max_seconds: float,
    give_up_after_seconds: float,
    now: dt.datetime | None = None,
    within: Callable[[Connection, OutboxRow, str], None] | None = None,
) -> list[str]:
    """Temporary failures of several rows (a relay that is down fails a whole batch), in one
    transaction: each back to ``pending`` after its own exponential backoff with jitter, or
    ``failed`` once older than ``give_up_after_seconds``. Returns each row's new state.
    ``within(conn, row, state)`` runs for each row whose claim held, in the transaction recording it."""
    now = now or utcnow()
    states: list[str] = []
    later: list[dict[str, Any]] = []
    for row in rows:
        if (now - row.created_at).total_seconds() > give_up_after_seconds:
            mark_failed(
                engine,
                row,
                f"gave up after {give_up_after_seconds:g}s of temporary failures: {error}",
                now=now,
                within=None if within is None else _bound_within(within, row, "failed"),
            )
            states.append("failed")
            continue
        delay = min(max_seconds, base_seconds * 2 ** (max(row.attempts, 1) - 1)) * random.uniform(0.5, 1.0)
        later.append({"b_id": row.id, "b_token": row.token, "b_at": now + dt.timedelta(seconds=delay)})
        states.append("pending")
    if later:
        _back_to_pending(engine, rows, later, error, within)
    return states


def _back_to_pending(
    engine: Engine,
    rows: Sequence[OutboxRow],
    later: list[dict[str, Any]],
    error: str,
    within: Callable[[Connection, OutboxRow, str], None] | None,
) -> None:
    """Put deferred rows (``later``: id, claim token, next attempt) back to ``pending`` where their
    claim still holds: one statement for all, or one per row when ``within`` must run for each."""
    if within is None:
        with engine.begin() as conn:
            conn.execute(
                update(outbox_table)
                .where(OUTBOX_CLAIMS.fence(bindparam("b_id"), bindparam("b_token")))
                .values(
                    state="pending",
                    last_error=error[:2000],
                    next_attempt_at=bindparam("b_at"),
                    claimed_by=None,
                    claimed_at=None,
                ),
                later,
            )
        return
    by_id = {row.id: row for row in rows}
    with engine.begin() as conn:
        for item in later:
            row = by_id[item["b_id"]]
            result = conn.execute(
                update(outbox_table)
                .where(fenced(row))
                .values(
                    state="pending",
                    last_error=error[:2000],
                    next_attempt_at=item["b_at"],
                    claimed_by=None,
                    claimed_at=None,
                )
            )
            if result.rowcount == 1:
                within(conn, row, "pending")


def _bound_within(within: Callable[[Connection, OutboxRow, str], None], row: OutboxRow, state: str) -> Within:
    def run(conn: Connection) -> None:
        within(conn, row, state)

    return run


def mark_failed(
    engine: Engine,
    row: OutboxRow,
    error: str,
    now: dt.datetime | None = None,
    *,
    within: Within | None = None,
) -> None:
    """A permanent failure: never retried, recorded on the ticket (``within``: as for :func:`mark_sent`)."""
    now = now or utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            update(outbox_table)
            .where(fenced(row))
            .values(state="failed", last_error=error[:2000], claimed_by=None)
        )
        if result.rowcount == 1:
            if within is not None:
                within(conn)
            _event(
                conn,
                row,
                f"{row.purpose}_failed",
                {"to": row.recipient, "outbox": row.id, "error": error},
                now,
            )


def mark_cancelled(engine: Engine, row: OutboxRow, reason: str, *, within: Within | None = None) -> bool:
    """Not to be sent after all (its cause ended while it waited, e.g. the page was acknowledged);
    only while our claim holds. True when it was cancelled here."""
    with engine.begin() as conn:
        result = conn.execute(
            update(outbox_table)
            .where(fenced(row))
            .values(state="cancelled", last_error=reason[:2000], claimed_by=None)
        )
        if result.rowcount == 1 and within is not None:
            within(conn)
        return result.rowcount == 1


def recover_abandoned(
    engine: Engine,
    *,
    lease_seconds: float,
    timeout_seconds: float,
    now: dt.datetime | None = None,
) -> int:
    """Return ``sending`` rows whose sender died (intaked/store/liveness.py) or hung for longer
    than ``timeout_seconds`` to ``pending``; they may have been sent (at least once), which the
    marker in ``last_error`` tells whoever sends them next."""
    return recover_abandoned_rows(
        engine,
        OUTBOX_CLAIMS,
        now=now or utcnow(),
        lease_seconds=lease_seconds,
        timeout_seconds=timeout_seconds,
        # The sender may have been answered before it died: whoever sends it next asks the
        # provider first where it can (intaked/twilio/dispatcher.py).
        requeued={"last_error": UNKNOWN_OUTCOME_AFTER_CLAIM},
    )


def release_rows(engine: Engine, rows: Sequence[OutboxRow]) -> int:
    """Hand back claimed rows this sender has not tried (the store failed under it): ``pending``
    again at once, the attempt not counted."""
    return release_claims(engine, OUTBOX_CLAIMS, [(row.token, row.id) for row in rows])


def hand_back(engine: Engine, rows: Sequence[OutboxRow], unsettled: Unsettled) -> None:
    """Hand back rows not yet tried, now or (the store being down) once it is back."""
    if not rows:
        return
    held = list(rows)
    label = f"hand back outbox rows {[row.id for row in held]}"
    with contextlib.suppress(OutcomeHeld):
        unsettled.record(label, lambda: release_rows(engine, held))


def recovery(settings: Settings, wake: Callable[[], None]) -> Recovery:
    """Taking up the rows of dead senders, for a liveness keeper (``wake``: this process's senders)."""

    def recover(engine: Engine, now: dt.datetime) -> int:
        return recover_abandoned(
            engine,
            lease_seconds=settings.daemon.lease_seconds,
            timeout_seconds=settings.outbox.claim_timeout_seconds,
            now=now,
        )

    return Recovery("outbox", recover, wake)
