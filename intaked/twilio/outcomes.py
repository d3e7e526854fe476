"""What the outcome of a Twilio outbox row writes to its page attempt (each in the transaction
that records the row's own outcome, telling the attempt listener), and what the dispatcher reads
back about a row's earlier tries (intaked/twilio/dispatcher.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, update

from intaked.metrics.observed import seconds_since
from intaked.outbound.attempts import (
    AttemptListener,
    lock_attempt,
    mark_provider_down,
    mark_provider_up,
    move_attempt,
)
from intaked.outbound.outbox import OutboxRow
from intaked.ports.phone import PermanentFailure
from intaked.store.engine import read_only
from intaked.store.models import outbox_table, page_attempt_table, page_table
from intaked.store.types import utcnow


def attempt_id_of(row: OutboxRow) -> int | None:
    value = row.payload.get("attempt_id")
    return int(value) if value is not None else None


def _locked_attempt(conn: Connection, attempt_id: int | None) -> Row[Any] | None:
    """The page attempt ``attempt_id``, locked (None when the row carries none or it is gone)."""
    return None if attempt_id is None else lock_attempt(conn, attempt_id)


def on_success(
    attempt_id: int | None,
    sid: str,
    listener: AttemptListener,
    first_of_page: list[tuple[str, float]] | None = None,
) -> Callable[[Connection], None]:
    """Record the acceptance on the attempt. When it is the first SMS (or call) of its page
    Twilio accepted, ``first_of_page`` gets its channel and the seconds since the page started,
    for ``intaked_page_latency_seconds`` once this transaction is committed."""

    def record(conn: Connection) -> None:
        attempt = _locked_attempt(conn, attempt_id)
        if attempt is None:
            return
        now = utcnow()
        if first_of_page is not None:
            first_of_page.clear()  # a record written again after a database outage says it again
            started = _first_acceptance(conn, attempt)
            if started is not None:
                first_of_page.append((str(attempt.channel), seconds_since(started, now)))
        if not move_attempt(conn, attempt, "sent", now, listener=listener, provider_sid=sid):
            conn.execute(
                update(page_attempt_table)
                .where(page_attempt_table.c.id == attempt_id, page_attempt_table.c.sent_at.is_(None))
                .values(sent_at=now)
            )
        mark_provider_up(conn, int(attempt.page_id), now)

    return record


def _first_acceptance(conn: Connection, attempt: Row[Any]) -> dt.datetime | None:
    """When ``attempt`` is its page's first of its channel Twilio accepted: the page's start."""
    if attempt.sent_at is not None or attempt.provider_sid is not None:
        return None
    earlier = conn.execute(
        select(page_attempt_table.c.id)
        .where(
            page_attempt_table.c.page_id == attempt.page_id,
            page_attempt_table.c.channel == attempt.channel,
            page_attempt_table.c.id != attempt.id,
            page_attempt_table.c.provider_sid.is_not(None),
        )
        .limit(1)
    ).first()
    if earlier is not None:
        return None
    started: dt.datetime | None = conn.execute(
        select(page_table.c.started_at).where(page_table.c.id == attempt.page_id)
    ).scalar()
    return started


def on_permanent(
    attempt_id: int | None, exc: PermanentFailure, kind: str, listener: AttemptListener
) -> Callable[[Connection], None]:
    def record(conn: Connection) -> None:
        attempt = None if kind == "call_cancel" else _locked_attempt(conn, attempt_id)
        if attempt is None:  # no attempt, or a cancel that failed (it does not fail the call)
            return
        code = str(exc.code) if exc.code is not None else None
        move_attempt(conn, attempt, "failed", utcnow(), listener=listener, error_code=code, error=str(exc))

    return record


def on_temporary(error: str, listener: AttemptListener) -> Callable[[Connection, OutboxRow, str], None]:
    def record(conn: Connection, row: OutboxRow, state: str) -> None:
        attempt = _locked_attempt(conn, attempt_id_of(row))
        if attempt is None:
            return
        now = utcnow()
        mark_provider_down(conn, int(attempt.page_id), now, error)
        if state == "failed" and row.kind != "call_cancel":  # gave up after outbox.give_up_after_seconds
            move_attempt(conn, attempt, "failed", now, listener=listener, error=error)

    return record


def known_sids(engine: Engine, sids: list[str]) -> set[str]:
    """Which of ``sids`` an attempt or an outbox row already carries."""
    if not sids:
        return set()
    with read_only(engine).connect() as conn:
        known = conn.execute(
            select(page_attempt_table.c.provider_sid).where(page_attempt_table.c.provider_sid.in_(sids))
        ).scalars()
        found = {str(s) for s in known}
        sent = conn.execute(select(outbox_table.c.provider_id).where(outbox_table.c.provider_id.in_(sids)))
        return found | {str(s) for s in sent.scalars()}


def attempt_sid(engine: Engine, attempt_id: int) -> str | None:
    """The Sid a status callback already wrote on ``attempt_id``, if any."""
    with read_only(engine).connect() as conn:
        sid = conn.execute(
            select(page_attempt_table.c.provider_sid).where(page_attempt_table.c.id == attempt_id)
        ).scalar()
    return str(sid) if sid else None


def last_error(engine: Engine, row: OutboxRow) -> str:
    with read_only(engine).connect() as conn:
        value = conn.execute(select(outbox_table.c.last_error).where(outbox_table.c.id == row.id)).scalar()
    return str(value or "")
