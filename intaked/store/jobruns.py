"""Periodic jobs run once per interval across the daemons sharing one database (``job_runs``).

A job's *slot* is the interval of its schedule an instant falls in: ``floor(epoch seconds /
interval) * interval``, counted from the Unix epoch in UTC, so every node computes the same slots
without talking to the others. Before a pass a node inserts the row ``(job, slot_start)`` with an
insert-or-nothing (the primary key decides); only the node whose insert landed runs the job in
that slot, the others skip it (debug log ``job_slot_taken_elsewhere``).

The row is committed before the pass starts, so a node that dies mid-pass leaves ``finished_at``
NULL and nobody runs that slot again: the next slot's node does the work that is still due. (The
passes this guards are themselves safe to repeat, so a lost slot costs one interval of delay,
never a double warning or a double close.) The holder records ``finished_at``, the outcome and how
many things it handled after each pass; a holder whose pass failed (the store went away) may try
again within its own slot, and, for a job that works in batches, a holder keeps going in its slot
while its passes still find work.

Rows older than :data:`KEEP_RUNS` are pruned (by the auto-close sweeper's pass).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import structlog
from sqlalchemy import Engine, delete, update

from intaked.store.dialect import insert_or_nothing
from intaked.store.liveness import node_name, worker_id
from intaked.store.models import job_run_table
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

KEEP_RUNS = dt.timedelta(days=7)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_runs = job_run_table


def job_slot(now: dt.datetime, interval_seconds: float) -> dt.datetime:
    """The start of the slot ``now`` falls in, for a job run every ``interval_seconds``."""
    step = max(1, round(interval_seconds * 1_000_000))
    elapsed = (now - EPOCH) // _MICROSECOND
    return EPOCH + dt.timedelta(microseconds=elapsed // step * step)


def claim_slot(
    engine: Engine,
    job: str,
    slot_start: dt.datetime,
    now: dt.datetime,
    *,
    node: str | None = None,
    worker: str | None = None,
) -> bool:
    """Insert ``job``'s row for the slot starting at ``slot_start`` (committed at once); True when
    this insert landed, i.e. this node runs the job in that slot."""
    values = {
        "job": job,
        "slot_start": slot_start,
        "node": (node or node_name())[:64],
        "worker": (worker or worker_id())[:128],
        "started_at": now,
    }
    with engine.begin() as conn:
        return insert_or_nothing(conn, _runs, values, ("job", "slot_start"))


def finish_slot(
    engine: Engine, job: str, slot_start: dt.datetime, now: dt.datetime, *, outcome: str, handled: int
) -> None:
    """Record that ``job``'s pass in the slot starting at ``slot_start`` ended (``done`` or
    ``failed``) at ``now``, having handled ``handled`` things in that slot so far."""
    with engine.begin() as conn:
        conn.execute(
            update(_runs)
            .where(_runs.c.job == job, _runs.c.slot_start == slot_start)
            .values(finished_at=now, outcome=outcome, handled=handled)
        )


def prune_job_runs(engine: Engine, now: dt.datetime, keep: dt.timedelta = KEEP_RUNS) -> int:
    """Delete the rows of slots that started more than ``keep`` before ``now``; returns how many."""
    with engine.begin() as conn:
        return int(conn.execute(delete(_runs).where(_runs.c.slot_start < now - keep)).rowcount)


class OncePerSlot:
    """One periodic job of this node: :meth:`run` runs a pass only in a slot this node claimed.

    ``drain``: the job works in batches (a pass returns how many it handled, up to a limit), so the
    holder runs further passes in its slot while the last one handled something; without it, one
    pass per slot. ``clock``: the time the slots are counted in (a test's fake clock)."""

    def __init__(
        self,
        engine: Engine,
        job: str,
        interval_seconds: float,
        *,
        drain: bool = False,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self.job = job
        self._interval = interval_seconds
        self._drain = drain
        self._clock = clock
        self._slot: dt.datetime | None = None  # the last slot this node claimed
        self._more = False  # its passes there are not over (a batch was full, or a pass failed)
        self._handled = 0

    def run(self, work: Callable[[dt.datetime], int]) -> int | None:
        """Run ``work(now)`` (blocking; returns how many things it handled) if ``now``'s slot is
        this node's, claiming it if nobody has; None when the slot is another node's, or this
        node's passes in it are over."""
        now = self._clock()
        slot = job_slot(now, self._interval)
        if slot != self._slot:
            if not claim_slot(self._engine, self.job, slot, now):
                log.debug("job_slot_taken_elsewhere", job=self.job, slot=slot.isoformat(), node=node_name())
                return None
            self._slot, self._more, self._handled = slot, True, 0
        elif not self._more:
            return None
        try:
            handled = work(now)
        except Exception:
            self._record_failure(slot)
            raise
        finish_slot(
            self._engine, self.job, slot, self._clock(), outcome="done", handled=self._handled + handled
        )
        self._handled += handled
        self._more = self._drain and handled > 0
        return handled

    def _record_failure(self, slot: dt.datetime) -> None:
        """Mark the slot's pass ``failed`` if the store takes it (it is often the store that
        failed); this node may try again in the same slot."""
        try:
            finish_slot(self._engine, self.job, slot, self._clock(), outcome="failed", handled=self._handled)
        except Exception as exc:
            log.debug("job_run_failure_not_recorded", job=self.job, slot=slot.isoformat(), error=str(exc))
