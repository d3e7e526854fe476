"""Claiming due rows for work, safely under concurrent workers (ledger items, outbox rows).

A claim moves rows from their ready state to a working state in one short transaction, counts
the attempt, and stamps a claim token (``<worker id>/<random>``, intaked/store/liveness.py) that
later updates must match (a fencing token): a worker whose claim was taken over cannot commit over
the new owner. On PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED``, so concurrent
workers take different rows; SQLite has a single writer.

A claim ends in one of three ways: its worker records the outcome; its worker hands it back
(:func:`release_claim`: the store failed under it, or it is stopping), which does not count as an
attempt; or its worker died, and a live one takes it up again (intaked/store/liveness.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, Table, case, or_, select, update

from intaked.store.dialect import locked
from intaked.store.liveness import new_claim_token
from intaked.store.settle import Unsettled, store_unavailable


def claim_due_rows(
    engine: Engine,
    table: Table,
    *,
    ready: str,
    working: str,
    limit: int,
    now: dt.datetime,
    where: Sequence[ColumnElement[bool]] = (),
    unsettled: Unsettled | None = None,
) -> tuple[str, list[Row[Any]]]:
    """Claim up to ``limit`` rows in state ``ready`` that are due (oldest first); commit the claim.

    Returns the claim token and the rows as they were before the claim (``attempts`` not yet
    incremented). The table needs ``id``, ``state``, ``attempts``, ``next_attempt_at``,
    ``claimed_by`` and ``claimed_at`` columns. If the store fails under the claim (it may still
    have been committed), handing it back is kept in ``unsettled`` before the error is raised.
    """
    token = new_claim_token()
    columns = table.c
    query = (
        select(table)
        .where(
            columns.state == ready,
            or_(columns.next_attempt_at.is_(None), columns.next_attempt_at <= now),
            *where,
        )
        .order_by(columns.id)
        .limit(limit)
    )
    try:
        with engine.begin() as conn:
            query = locked(conn, query, skip_locked=True)
            rows = list(conn.execute(query).all())
            if rows:
                conn.execute(
                    update(table)
                    .where(columns.id.in_([row.id for row in rows]))
                    .values(state=working, attempts=columns.attempts + 1, claimed_by=token, claimed_at=now)
                )
    except Exception as exc:
        if unsettled is not None and store_unavailable(exc):
            unsettled.keep(
                f"hand back claim {token} of {table.name}",
                lambda: release_claim(engine, table, token=token, ready=ready, working=working),
            )
        raise
    return token, rows


def release_claim(
    engine: Engine,
    table: Table,
    *,
    token: str,
    ready: str,
    working: str,
    ids: Sequence[int] | None = None,
) -> int:
    """Hand back the rows claimed under ``token`` (all, or ``ids``) that are still in ``working``:
    ready again at once, and the attempt not counted (the row was not at fault). Returns how many."""
    columns = table.c
    condition = [columns.claimed_by == token, columns.state == working]
    if ids is not None:
        if not ids:
            return 0
        condition.append(columns.id.in_(list(ids)))
    with engine.begin() as conn:
        result = conn.execute(
            update(table)
            .where(*condition)
            .values(
                state=ready,
                attempts=case((columns.attempts > 0, columns.attempts - 1), else_=0),
                next_attempt_at=None,
                claimed_by=None,
                claimed_at=None,
            )
        )
    return int(result.rowcount)
