"""Where an IMAP mailbox stands in the store: its row of ``imap_mailboxes`` (UIDVALIDITY, last
committed UID, backlog, last poll, last error) and which of its messages the ledger already has.

The worker in intaked/channels/imap.py writes this row only while it holds the mailbox's lease
(intaked/store/leases.py, which keeps the lease columns of the same row); what ``intaked imap
status`` shows is read here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from intaked.store.dialect import insert_or_merge
from intaked.store.engine import read_only
from intaked.store.models import imap_mailbox_table, inbound_item_table
from intaked.store.types import utcnow

_table = imap_mailbox_table
_REFS_PER_QUERY = 500


def source_ref(mailbox: str, uidvalidity: int, uid: int) -> str:
    """The ledger's unique reference for one message of one mailbox generation."""
    return f"imap:{mailbox}:{uidvalidity}:{uid}"


class MailboxState:
    """The store's side of one mailbox: its state row, and the UIDs already in the ledger."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    def known_uids(self, uidvalidity: int, uids: Iterable[int]) -> set[int]:
        """Those of ``uids`` whose message is in the ledger already (committed, not yet moved)."""
        refs = {source_ref(self.name, uidvalidity, uid): uid for uid in uids}
        known: set[int] = set()
        keys = list(refs)
        items = inbound_item_table
        with read_only(self._engine).connect() as conn:
            for start in range(0, len(keys), _REFS_PER_QUERY):
                chunk = keys[start : start + _REFS_PER_QUERY]
                rows = conn.execute(select(items.c.source_ref).where(items.c.source_ref.in_(chunk)))
                known.update(refs[row.source_ref] for row in rows)
        return known

    def save(
        self,
        conn: Connection,
        uidvalidity: int,
        *,
        backlog: int | None = None,
        last_uid: int | None = None,
        polled: bool = False,
    ) -> None:
        """Record a pass's progress in the caller's transaction; ``polled``: a complete pass (it
        clears the last error)."""
        now = utcnow()
        values: dict[str, Any] = {"uidvalidity": uidvalidity, "updated_at": now}
        if backlog is not None:
            values["backlog"] = backlog
        if polled:
            values.update(last_poll_at=now, last_error=None, last_error_at=None)
        self.upsert(conn, values, last_uid=last_uid, uidvalidity=uidvalidity)

    def record_error(self, error: str) -> None:
        """Keep the last failure (login refused, connection lost...) for ``intaked imap status``."""
        now = utcnow()
        with self._engine.begin() as conn:
            self.upsert(conn, {"last_error": error[:2000], "last_error_at": now, "updated_at": now})

    def upsert(
        self,
        conn: Connection,
        values: dict[str, Any],
        *,
        last_uid: int | None = None,
        uidvalidity: int | None = None,
    ) -> None:
        """Write ``values`` into the row (created if missing); ``last_uid`` only ever grows within
        one UIDVALIDITY."""
        table = _table
        mine = table.c.name == self.name
        conn.execute(
            insert_or_merge(conn, table)
            .values(name=self.name, last_uid=0, **values)
            .on_conflict_do_nothing(index_elements=[table.c.name])
        )
        if uidvalidity is not None:
            # A new mailbox generation starts counting UIDs again.
            conn.execute(
                update(table)
                .where(mine, table.c.uidvalidity.is_distinct_from(uidvalidity))
                .values(last_uid=0)
            )
        conn.execute(update(table).where(mine).values(**values))
        if last_uid is not None:
            conn.execute(update(table).where(mine, table.c.last_uid < last_uid).values(last_uid=last_uid))


def mailbox_status(engine: Engine) -> dict[str, dict[str, Any]]:
    """What ``intaked imap status`` shows, per mailbox name (the lease's holder and end too)."""
    with read_only(engine).connect() as conn:
        return {row.name: dict(row._mapping) for row in conn.execute(select(_table))}
