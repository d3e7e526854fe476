"""Claiming due rows for work, safely under concurrent workers (ledger items, outbox rows).

A claim moves rows from their ready state to a working state in one short transaction, counts
the attempt, and stamps a claim token (``<worker id>/<random>``, intaked/store/liveness.py) that
later updates must match (a fencing token): a worker whose claim was taken over cannot commit over
the new owner. On PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED``, so concurrent
workers take different rows; SQLite has a single writer.

A claim ends in one of three ways: its worker records the outcome (only under
:meth:`ClaimStates.fence`); its worker hands it back (:func:`release_claim`: the store failed under
it, or it is stopping), which does not count as an attempt; or its worker died, and a live one takes
it up again (:func:`recover_abandoned_rows`, intaked/store/liveness.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, Table, and_, case, or_, select, update

from intaked.store.dialect import locked
from intaked.store.liveness import abandoned, any_abandoned, new_claim_token
from intaked.store.settle import Unsettled, store_unavailable

#: What a claim clears when it ends without an outcome.
_UNCLAIMED: Mapping[str, Any] = {"claimed_by": None, "claimed_at": None}


@dataclass(frozen=True, slots=True)
class ClaimStates:
    """A table whose rows are claimed for work: due rows wait in ``ready``, claimed ones are in
    ``working``. The table needs ``id``, ``state``, ``attempts``, ``next_attempt_at``,
    ``claimed_by`` and ``claimed_at`` columns."""

    table: Table
    ready: str
    working: str

    def due(self, now: dt.datetime) -> list[ColumnElement[bool]]:
        """SQL: the rows ready to be claimed at ``now``."""
        columns = self.table.c
        return [
            columns.state == self.ready,
            or_(columns.next_attempt_at.is_(None), columns.next_attempt_at <= now),
        ]

    def fence(self, row_id: Any, token: Any) -> ColumnElement[bool]:
        """SQL: row ``row_id``, only while it is still ``working`` under the claim ``token`` (the
        fencing token); both values or bind parameters."""
        columns = self.table.c
        return and_(columns.id == row_id, columns.state == self.working, columns.claimed_by == token)


def claim_due_rows(
    engine: Engine,
    claims: ClaimStates,
    *,
    limit: int,
    now: dt.datetime,
    where: Sequence[ColumnElement[bool]] = (),
    unsettled: Unsettled | None = None,
) -> tuple[str, list[Row[Any]]]:
    """Claim up to ``limit`` rows of ``claims`` that are due (oldest first); commit the claim.

    Returns the claim token and the rows as they were before the claim (``attempts`` not yet
    incremented). If the store fails under the claim (it may still have been committed), handing
    it back is kept in ``unsettled`` before the error is raised.
    """
    token = new_claim_token()
    table, columns = claims.table, claims.table.c
    query = select(table).where(*claims.due(now), *where).order_by(columns.id).limit(limit)
    try:
        with engine.begin() as conn:
            query = locked(conn, query, skip_locked=True)
            rows = list(conn.execute(query).all())
            if rows:
                conn.execute(
                    update(table)
                    .where(columns.id.in_([row.id for row in rows]))
                    .values(
                        state=claims.working, attempts=columns.attempts + 1, claimed_by=token, claimed_at=now
                    )
                )
    except Exception as exc:
        if unsettled is not None and store_unavailable(exc):
            unsettled.keep(
                f"hand back claim {token} of {table.name}",
                lambda: release_claim(engine, claims, token=token),
            )
        raise
    return token, rows


def release_claim(
    engine: Engine,
    claims: ClaimStates,
    *,
    token: str,
    ids: Sequence[int] | None = None,
) -> int:
    """Hand back the rows claimed under ``token`` (all, or ``ids``) that are still ``working``:
    ready again at once, and the attempt not counted (the row was not at fault). Returns how many."""
    columns = claims.table.c
    condition = [columns.claimed_by == token, columns.state == claims.working]
    if ids is not None:
        if not ids:
            return 0
        condition.append(columns.id.in_(list(ids)))
    with engine.begin() as conn:
        result = conn.execute(
            update(claims.table)
            .where(*condition)
            .values(
                state=claims.ready,
                attempts=case((columns.attempts > 0, columns.attempts - 1), else_=0),
                next_attempt_at=None,
                **_UNCLAIMED,
            )
        )
    return int(result.rowcount)


def release_claims(engine: Engine, claims: ClaimStates, held: Iterable[tuple[str, int]]) -> int:
    """Hand back claimed rows, given as (claim token, id) pairs: :func:`release_claim` for each
    token. Returns how many."""
    by_token: dict[str, list[int]] = {}
    for token, row_id in held:
        by_token.setdefault(token, []).append(row_id)
    return sum(release_claim(engine, claims, token=token, ids=ids) for token, ids in sorted(by_token.items()))


def recover_abandoned_rows(
    engine: Engine,
    claims: ClaimStates,
    *,
    now: dt.datetime,
    lease_seconds: float,
    timeout_seconds: float,
    requeued: Mapping[str, Any] | None = None,
    quarantine: tuple[int, Mapping[str, Any]] | None = None,
) -> int:
    """Take up the rows whose claim is abandoned (:func:`~intaked.store.liveness.abandoned`): ready
    again at once, with the columns ``requeued`` (if any) set as well; but with ``quarantine``
    (max attempts, columns), a row claimed that many times already gets its columns instead (did
    it kill its worker?). Returns how many rows were touched."""
    base = abandoned(
        claims.table,
        working=claims.working,
        now=now,
        lease_seconds=lease_seconds,
        timeout_seconds=timeout_seconds,
    )
    if not any_abandoned(engine, claims.table, base):
        return 0
    touched = 0
    with engine.begin() as conn:
        if quarantine is not None:
            max_attempts, columns = quarantine
            touched += conn.execute(
                update(claims.table)
                .where(base, claims.table.c.attempts >= max_attempts)
                .values(**columns, **_UNCLAIMED)
            ).rowcount
        touched += conn.execute(
            update(claims.table)
            .where(base)
            .values(state=claims.ready, next_attempt_at=None, **(requeued or {}), **_UNCLAIMED)
        ).rowcount
    return touched
