"""Mailbox leases: which node pulls each IMAP mailbox, with a fencing token.

Several daemons may share one PostgreSQL database with the same configuration; each IMAP mailbox
is pulled by one of them at a time. The mailbox's row of ``imap_mailboxes`` holds its lease:
``lease_holder`` (the holder's id, the front process's worker id), ``lease_expires_at`` and
``lease_fence``, a number that grows at every take-over. The holder renews the lease well before
it runs out (:func:`take_or_renew`) and gives it back when it stops (:func:`release`). Anyone may
take a lease that is free, has run out, or whose holder ``workers`` marks ``gone``: a node that
died frees its mailboxes as soon as liveness notices (intaked/store/liveness.py). The lease
columns leave ``updated_at`` alone: it still says when the mailbox's own state last changed.

Fencing: a holder commits what it captured only in a transaction that locks the row and finds
its own id and fence there (:func:`holds`). A holder that was stopped past its lease and taken
over finds another holder or a larger fence, rolls back and moves nothing. A lease that ran out
but that nobody took is still its holder's: a take-over has to change the locked row first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, case, exists, or_, select, update

from intaked.store.dialect import insert_or_merge, locked
from intaked.store.engine import read_only
from intaked.store.models import imap_mailbox_table, worker_table

_mailboxes = imap_mailbox_table
_workers = worker_table


class LeaseLost(Exception):
    """Another holder took the mailbox's lease over: what we fetched must be neither stored nor
    moved. ``not_stored``: how many fetched messages were left to the new holder."""

    def __init__(self, message: str, *, not_stored: int = 0) -> None:
        super().__init__(message)
        self.not_stored = not_stored


@dataclass(frozen=True, slots=True)
class Lease:
    """A mailbox's lease as the store has it (``holder`` None: free)."""

    holder: str | None
    expires_at: dt.datetime | None
    fence: int


def take_or_renew(
    engine: Engine, name: str, holder: str, lease_seconds: float, now: dt.datetime
) -> int | None:
    """Take the lease of mailbox ``name`` for ``holder`` until ``now + lease_seconds``, when it is
    free, has run out, is held by a gone worker, or is ours already; returns our fence (unchanged
    on a renewal, one more on a take-over), or None when another holder has it."""
    until = now + dt.timedelta(seconds=lease_seconds)
    t = _mailboxes
    holder_gone = exists(
        select(_workers.c.id).where(_workers.c.id == t.c.lease_holder, _workers.c.state == "gone")
    )
    takeable = or_(
        t.c.lease_holder.is_(None),
        t.c.lease_holder == holder,
        t.c.lease_expires_at.is_(None),
        t.c.lease_expires_at <= now,
        holder_gone,
    )
    fence = case((t.c.lease_holder == holder, t.c.lease_fence), else_=t.c.lease_fence + 1)
    with engine.begin() as conn:
        taken = conn.execute(
            update(t)
            .where(t.c.name == name, takeable)
            .values(lease_holder=holder, lease_expires_at=until, lease_fence=fence, updated_at=t.c.updated_at)
            .returning(t.c.lease_fence)
        ).scalar_one_or_none()
        if taken is not None:
            return int(taken)
        # No row yet (a mailbox never pulled), or another holder's: insert, or find it taken.
        inserted = conn.execute(
            insert_or_merge(conn, t)
            .values(
                name=name,
                last_uid=0,
                updated_at=now,
                lease_holder=holder,
                lease_expires_at=until,
                lease_fence=1,
            )
            .on_conflict_do_nothing(index_elements=[t.c.name])
            .returning(t.c.lease_fence)
        ).scalar_one_or_none()
    return None if inserted is None else int(inserted)


def holds(conn: Connection, name: str, holder: str, fence: int) -> bool:
    """In the caller's transaction: lock mailbox ``name``'s row (``FOR UPDATE`` on PostgreSQL;
    SQLite's writer holds the database) and say whether ``holder`` still has its lease with
    ``fence``. Until the transaction ends, nobody can take the lease over."""
    t = _mailboxes
    row = conn.execute(
        locked(conn, select(t.c.lease_holder, t.c.lease_fence).where(t.c.name == name))
    ).first()
    return row is not None and row.lease_holder == holder and int(row.lease_fence) == fence


def ensure_held(conn: Connection, name: str, holder: str, fence: int, *, not_stored: int = 0) -> None:
    """:func:`holds`, raising :class:`LeaseLost` (which rolls the transaction back) when not."""
    if not holds(conn, name, holder, fence):
        raise LeaseLost(f"the lease of mailbox {name} (fence {fence}) was taken over", not_stored=not_stored)


def release(engine: Engine, name: str, holder: str) -> bool:
    """Give the lease back (a clean stop), if ``holder`` still has it; the next taker's fence
    grows. Returns whether there was one to give back."""
    t = _mailboxes
    with engine.begin() as conn:
        result = conn.execute(
            update(t)
            .where(t.c.name == name, t.c.lease_holder == holder)
            .values(lease_holder=None, lease_expires_at=None, updated_at=t.c.updated_at)
        )
    return bool(result.rowcount)


def lease_of(engine: Engine, name: str) -> Lease | None:
    """Mailbox ``name``'s lease (None: the mailbox has no row yet)."""
    t = _mailboxes
    with read_only(engine).connect() as conn:
        row = conn.execute(
            select(t.c.lease_holder, t.c.lease_expires_at, t.c.lease_fence).where(t.c.name == name)
        ).first()
    return None if row is None else Lease(row.lease_holder, row.lease_expires_at, int(row.lease_fence))
