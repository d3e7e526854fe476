"""Capture: commit raw inbound items to the ledger, many sessions per transaction.

A channel hands over the exact bytes it received plus its envelope and awaits
:meth:`CaptureWriter.submit`; the call returns only once the item is committed, so the channel
may then acknowledge its peer (SMTP 250, IMAP move). Items submitted while a commit is running
are grouped into the next transaction (group commit), which keeps the per-message cost of a
durable commit low under many concurrent senders.

The writer holds a message only until its commit: once the channel has its answer nothing here
refers to it, and after large mail the process gives the freed memory back (intaked/memory.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Connection, Engine, insert

from intaked.memory import LARGE_WORK_BYTES, DeferredRelease
from intaked.metrics.counters import DATABASE_ERRORS
from intaked.store.engine import close_instead_of_pooling
from intaked.store.models import inbound_item_table
from intaked.store.settle import describe_error
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)
_items = inbound_item_table


@dataclass(frozen=True, slots=True)
class RawItem:
    """What a channel received, exactly as received."""

    channel: str
    raw: bytes
    envelope_from: str | None = None
    envelope_to: Sequence[str] = ()
    peer: str | None = None
    received_at: dt.datetime = field(default_factory=utcnow)
    source_ref: str | None = None  # where it came from, unique: e.g. imap:<mailbox>:<uidvalidity>:<uid>


def compress_raw(raw: bytes) -> bytes:
    """How raw bytes are stored (``raw_encoding = 'zlib'``): zlib at its fastest level (1): the
    commit that answers the sender waits for it, and mail is mostly compressed already."""
    return zlib.compress(raw, 1)


def insert_items(
    engine: Engine, items: Sequence[RawItem], *, also: Callable[[Connection], object] | None = None
) -> list[int]:
    """Insert and commit ``items`` in one transaction (with ``also``'s writes, e.g. a channel's
    bookkeeping); returns their ledger ids, in order."""
    rows = [
        {
            "channel": item.channel,
            "received_at": item.received_at,
            "state": "received",
            "attempts": 0,
            "envelope_from": item.envelope_from,
            "envelope_to": json.dumps(list(item.envelope_to), ensure_ascii=False),
            "peer": item.peer,
            "raw": compress_raw(item.raw),
            "raw_encoding": "zlib",
            "raw_size": len(item.raw),
            "raw_sha256": hashlib.sha256(item.raw).hexdigest(),
            "source_ref": item.source_ref,
        }
        for item in items
    ]
    stmt = insert(_items).returning(_items.c.id, sort_by_parameter_order=True)
    with engine.connect() as conn:
        with conn.begin():
            ids = [row.id for row in conn.execute(stmt, rows)]
            if also is not None:
                also(conn)
        if sum(len(item.raw) for item in items) >= LARGE_WORK_BYTES:
            close_instead_of_pooling(conn)  # it would keep a copy of the last message bound
        return ids


class CaptureUnavailable(Exception):
    """The store could not take the item; the channel must tell its peer to retry later."""


class CaptureWriter:
    """Commits submitted items in groups on a database thread; wakes ``on_committed`` after each."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        *,
        on_committed: Callable[[], None] = lambda: None,
        max_batch: int = 128,
    ) -> None:
        self._engine = engine
        self._executor = executor
        self._on_committed = on_committed
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[RawItem, asyncio.Future[int]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._release = DeferredRelease()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="capture-writer")

    async def submit(self, item: RawItem) -> int:
        """Commit ``item``; returns its ledger id. Raises :class:`CaptureUnavailable`."""
        if self._closing or self._task is None or self._task.done():
            raise CaptureUnavailable("intake is shutting down")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)
            # Nothing of a committed batch outlives it here: while this task waits for the next
            # item, a local still naming the last batch would keep its messages in memory.
            del batch

    async def _commit(self, batch: list[tuple[RawItem, asyncio.Future[int]]]) -> None:
        items = [item for item, _ in batch]
        try:
            ids = await asyncio.get_running_loop().run_in_executor(
                self._executor, insert_items, self._engine, items
            )
        except Exception as exc:
            log.error("capture_failed", items=len(items), error=describe_error(exc))
            DATABASE_ERRORS.labels(source="capture").inc()
            for _, future in batch:
                if not future.done():
                    future.set_exception(CaptureUnavailable(str(exc)))
        else:
            for (_, future), item_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(item_id)
            self._on_committed()
        finally:
            for _ in batch:
                self._queue.task_done()
            self._release.note(sum(len(item.raw) for item in items))

    async def close(self) -> None:
        """Commit what was already submitted, then stop."""
        self._closing = True
        if self._task is None:
            return
        await self._queue.join()
        self._release.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
