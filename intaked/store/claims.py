"""Claiming due rows for work, safely under concurrent workers (ledger items, outbox rows).

A claim moves rows from their ready state to a working state in one short transaction, counts
the attempt, and stamps a claim token (``host:random``) that later updates must match (a fencing
token): a worker whose claim was taken over cannot commit over the new owner. On PostgreSQL the
rows are locked with ``FOR UPDATE SKIP LOCKED``, so concurrent workers take different rows; SQLite
has a single writer.
"""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, Table, or_, select, update


def node_name() -> str:
    """This host's name, the prefix of every claim token it issues."""
    return socket.gethostname()


def new_claim_token() -> str:
    return f"{node_name()}:{uuid.uuid4().hex[:16]}"


def claim_due_rows(
    engine: Engine,
    table: Table,
    *,
    ready: str,
    working: str,
    limit: int,
    now: dt.datetime,
    where: Sequence[ColumnElement[bool]] = (),
) -> tuple[str, list[Row[Any]]]:
    """Claim up to ``limit`` rows in state ``ready`` that are due (oldest first); commit the claim.

    Returns the claim token and the rows as they were before the claim (``attempts`` not yet
    incremented). The table needs ``id``, ``state``, ``attempts``, ``next_attempt_at``,
    ``claimed_by`` and ``claimed_at`` columns.
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
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(conn.execute(query).all())
        if rows:
            conn.execute(
                update(table)
                .where(columns.id.in_([row.id for row in rows]))
                .values(state=working, attempts=columns.attempts + 1, claimed_by=token, claimed_at=now)
            )
    return token, rows
