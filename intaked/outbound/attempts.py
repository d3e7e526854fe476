"""How the Twilio transport moves ``page_attempts`` rows: forward only, never out of an end state.

Used by the Twilio dispatcher (a request accepted or refused) and by the status callbacks (what
happened next). Each change is made in the caller's transaction and followed, in it, by the
:data:`AttemptListener` the caller was given (the daemon gives the escalation engine's
``attempt_updated``), so the engine reacts atomically; this module never calls up into paging.

Order of the statuses (docs/schema.md, ``page_attempts``): ``queued`` → ``sent`` → ``delivered``
(SMS) or ``ringing`` → ``answered`` → ``completed`` (calls). ``acknowledged``, ``failed`` and
``cancelled`` are end states; ``completed`` is one too for the transport (a call that ended, maybe
on voicemail: not an acknowledgement). A later callback never moves a row backwards.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row, select, update

from intaked.store.dialect import locked
from intaked.store.models import page_attempt_table, page_table

#: Told, in the same transaction, that page attempt ``attempt_id`` just changed (never commits).
AttemptListener = Callable[[Connection, int, dt.datetime], None]

RANK: dict[str, int] = {
    "queued": 0,
    "sent": 1,
    "ringing": 2,
    "delivered": 3,
    "answered": 3,
    "completed": 4,
}
END_STATES = frozenset({"completed", "acknowledged", "failed", "cancelled"})
#: Which timestamp column a status sets (when still empty).
STAMPS: dict[str, str] = {
    "sent": "sent_at",
    "delivered": "delivered_at",
    "answered": "answered_at",
    "completed": "ended_at",
    "failed": "ended_at",
    "cancelled": "ended_at",
}


def lock_attempt(conn: Connection, attempt_id: int) -> Row[Any] | None:
    """The attempt's row, locked for the rest of the transaction (PostgreSQL; SQLite has one writer)."""
    query = select(page_attempt_table).where(page_attempt_table.c.id == attempt_id)
    query = locked(conn, query)
    return conn.execute(query).first()


def find_attempt_by_sid(conn: Connection, sid: str) -> Row[Any] | None:
    """The attempt carried by Twilio resource ``sid``, locked."""
    found = conn.execute(
        select(page_attempt_table.c.id).where(page_attempt_table.c.provider_sid == sid).limit(1)
    ).first()
    return lock_attempt(conn, int(found.id)) if found is not None else None


def can_move(current: str, new: str) -> bool:
    """Whether an attempt in ``current`` may become ``new``."""
    if current in END_STATES or current == new:
        return False
    if new in ("failed", "cancelled"):
        return True
    return RANK.get(new, -1) > RANK.get(current, 99)


def move_attempt(
    conn: Connection,
    attempt: Row[Any],
    new: str,
    now: dt.datetime,
    *,
    listener: AttemptListener,
    provider_sid: str | None = None,
    error_code: str | None = None,
    error: str | None = None,
) -> bool:
    """Move ``attempt`` (a locked row) to ``new`` if that is forward; stamps the matching time,
    records the error, then tells ``listener``. False: nothing changed."""
    if not can_move(str(attempt.status), new):
        if provider_sid and attempt.provider_sid is None:
            conn.execute(
                update(page_attempt_table)
                .where(page_attempt_table.c.id == attempt.id)
                .values(provider_sid=provider_sid)
            )
        return False
    values: dict[str, Any] = {"status": new}
    stamp = STAMPS.get(new)
    if stamp is not None and getattr(attempt, stamp) is None:
        values[stamp] = now
    if provider_sid and attempt.provider_sid is None:
        values["provider_sid"] = provider_sid
    if error_code is not None:
        values["error_code"] = error_code[:16]
    if error is not None:
        values["error"] = error[:2000]
    conn.execute(update(page_attempt_table).where(page_attempt_table.c.id == attempt.id).values(**values))
    listener(conn, int(attempt.id), now)
    return True


def mark_provider_down(conn: Connection, page_id: int, now: dt.datetime, error: str) -> None:
    """Twilio could not be reached for this page: remember since when (the first time only)."""
    conn.execute(
        update(page_table)
        .where(page_table.c.id == page_id, page_table.c.provider_down_since.is_(None))
        .values(provider_down_since=now, updated_at=now)
    )
    conn.execute(update(page_table).where(page_table.c.id == page_id).values(last_error=error[:2000]))


def mark_provider_up(conn: Connection, page_id: int, now: dt.datetime) -> None:
    """Twilio accepted a request of this page: it is reachable again."""
    conn.execute(
        update(page_table)
        .where(page_table.c.id == page_id, page_table.c.provider_down_since.is_not(None))
        .values(provider_down_since=None, updated_at=now)
    )
