"""Token buckets in the database (``rate_buckets``): one rate budget for every daemon sharing the
store, such as Twilio's calls per second for one account.

A bucket holds ``tokens`` as of ``updated_at``. A taker locks the row (``FOR UPDATE`` on
PostgreSQL; SQLite's single writer already excludes the others), adds what ``rate`` refilled since
``updated_at`` (up to ``capacity``), and takes one token if there is a whole one. Rate and
capacity are the taker's own (its settings), so a changed setting counts from its next take.

Times are wall-clock instants (the nodes share no monotonic clock). A taker whose clock is behind
the bucket's ``updated_at`` sees no refill until its clock catches up, and ``updated_at`` never
moves back: clock skew between nodes can only slow the budget down, never hand out more.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, Engine, select, update

from intaked.store.dialect import insert_or_nothing, locked
from intaked.store.models import rate_bucket_table

_buckets = rate_bucket_table


def take(
    engine_or_conn: Engine | Connection, name: str, rate: float, capacity: float, now: dt.datetime
) -> float:
    """Take one token from the bucket ``name`` (created full on first use): 0.0 when taken, else
    the seconds until a token will be there (nothing taken). With a connection, it runs in the
    caller's transaction and holds the bucket's row until that transaction ends. ``capacity`` is
    at least one token."""
    capacity = max(1.0, capacity)
    if isinstance(engine_or_conn, Connection):
        return _take(engine_or_conn, name, rate, capacity, now)
    with engine_or_conn.begin() as conn:
        return _take(conn, name, rate, capacity, now)


def _take(conn: Connection, name: str, rate: float, capacity: float, now: dt.datetime) -> float:
    query = locked(conn, select(_buckets.c.tokens, _buckets.c.updated_at).where(_buckets.c.name == name))
    row = conn.execute(query).first()
    if row is None:
        insert_or_nothing(conn, _buckets, {"name": name, "tokens": capacity, "updated_at": now}, ("name",))
        row = conn.execute(query).one()
    updated_at = max(row.updated_at, now)
    elapsed = (now - row.updated_at).total_seconds()
    tokens = min(capacity, float(row.tokens) + max(0.0, elapsed) * rate)
    if tokens < 1.0:
        return float((1.0 - tokens) / rate)  # the row is left as it was: the refill is counted next time
    conn.execute(
        update(_buckets).where(_buckets.c.name == name).values(tokens=tokens - 1.0, updated_at=updated_at)
    )
    return 0.0
