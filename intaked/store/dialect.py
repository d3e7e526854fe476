"""What differs between SQLite and PostgreSQL, in one place: inserts that may conflict, row locks,
advisory locks.

Everything else in intaked is written once for both. SQLite has one writer at a time (a write
transaction holds the database), so the locks below are no-ops there: the writer lock already
serialises what PostgreSQL serialises with ``FOR UPDATE`` and advisory locks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Select, Table, text
from sqlalchemy.dialects import postgresql, sqlite

_S = TypeVar("_S", bound=Select[Any])


def is_postgresql(conn: Connection) -> bool:
    """The connection is to PostgreSQL (else SQLite)."""
    return conn.dialect.name == "postgresql"


def insert_or_merge(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT for ``table`` that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``
    (both dialects spell them the same way)."""
    if is_postgresql(conn):
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_or_nothing(
    conn: Connection, table: Table, values: Mapping[str, Any], conflict: Sequence[str]
) -> bool:
    """Insert one row unless a row with the same ``conflict`` columns (its primary key or a unique
    constraint) exists; True when this insert landed. On PostgreSQL a concurrent insert of the same
    key waits for the other transaction: it lands only if that one rolled back."""
    statement = (
        insert_or_merge(conn, table)
        .values(dict(values))
        .on_conflict_do_nothing(index_elements=list(conflict))
        .returning(*(table.c[name] for name in conflict))  # no row back: nothing inserted
    )
    return conn.execute(statement).first() is not None


def locked(conn: Connection, query: _S, *, skip_locked: bool = False) -> _S:
    """``query`` taking row locks until the transaction ends (``FOR UPDATE``, optionally ``SKIP
    LOCKED``) on PostgreSQL; unchanged on SQLite, whose single writer already excludes others."""
    if is_postgresql(conn):
        return query.with_for_update(skip_locked=skip_locked)
    return query


def lock_name(conn: Connection, name: str) -> None:
    """Wait for the transaction-scoped advisory lock called ``name`` (PostgreSQL)."""
    if is_postgresql(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


def try_lock_key(conn: Connection, key: int) -> bool:
    """Take the transaction-scoped advisory lock ``key`` if nobody holds it (PostgreSQL); True on
    SQLite."""
    if not is_postgresql(conn):
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar_one())
