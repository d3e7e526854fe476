"""Timed work: APScheduler wakes the working-time workers; the database decides what is due, and
which node does it.

Jobs do nothing but wake a worker (``sla.check_seconds``: deadlines and warnings;
``lifecycle.sweep_interval``: the auto-close sweep; ``paging.check_seconds``: pages to start and
escalation steps that are due; ``hotline.reconcile_interval``: calls whose webhooks were lost,
from Twilio's Calls list). The workers run their passes on database threads.

Several daemons ("nodes") may share one PostgreSQL database with the same configuration, and
each wakes its own workers. **Once per slot** (the job's interval, counted from the epoch:
intaked/store/jobruns.py), on the one node whose ``job_runs`` row landed, run the passes that
notify people or spend a provider's budget, where a second run only repeats work:

- ``sla_check`` (``sla.check_seconds``): the warnings and breaches (``check_due``, in batches),
  then the security incidents' clocks, chains, warnings and breaches (``check_security``):
  the holder goes on in its slot while its passes still find tickets due;
- ``sweep`` (``lifecycle.sweep_interval``): the auto-close sweep, and the pruning of
  ``job_runs`` rows older than 7 days;
- ``hotline_reconcile`` (``hotline.reconcile_interval``): reading Twilio's Calls and Recordings
  lists, requests against the account's API budget;
- ``reports`` (``reports.check_seconds``, only with ``[reports]`` recipients): the scheduled
  service-level reports by mail (intaked/reports/schedule.py), built once a period is over and
  its send time has come, unless their outbox rows exist already.

A node that dies mid-pass leaves its slot unfinished, and nobody runs that slot again: the next
slot's node does what is still due. Each of these passes would still be harmless twice (check_due's
advisory lock, ``*_warned_at``/``*_breached_at`` and outbox idempotency keys; the sweep's
conditional UPDATE; reconciliation's CallSid and receipt keys; a report's outbox key per period
and recipient): the slot saves the work and the requests, it does not carry correctness.

**Anywhere, on every pass**, in or out of schedule:

- the calendar overrides are read and, when they changed, the open tickets' deadlines recomputed:
  each node keeps its calendars in memory, so each must notice; the recomputation locks the rows
  it rewrites, so a second node finds them current and writes no event twice;
- the SLA sync of changed tickets (``sync_tickets``): a new ticket's triage deadline, a priority
  another tool wrote, must not wait a whole interval; it takes the changed rows ``FOR UPDATE SKIP
  LOCKED``, so nodes syncing at once split them and each change is recorded once;
- the paging worker (:class:`PagingWorker`): starting pages and running due escalation steps is
  not slotted, since a step must not wait an interval and is fenced already: one active page per
  ticket (a unique index), and every transition holds the page's row and bumps its fencing token
  (intaked/paging/steps.py), so a step that two nodes run at once happens once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.hotline.reconcile import reconcile_calls, reconcile_recordings
from intaked.paging.pages import start_pages_for_priorities
from intaked.paging.queries import page_sends_due
from intaked.paging.steps import run_due
from intaked.ports.phone import PhoneProvider
from intaked.reports.schedule import queue_due_reports
from intaked.security.tracker import check_security
from intaked.sla.context import SlaContext, build_context, load_overrides
from intaked.sla.enforcement import check_due
from intaked.sla.sweeper import sweep
from intaked.sla.targets import wall_time
from intaked.sla.tracker import recompute_open, sync_tickets
from intaked.store.engine import read_only
from intaked.store.jobruns import OncePerSlot, prune_job_runs
from intaked.store.types import utcnow
from intaked.tickets.lifecycle import resolved_elsewhere
from intaked.worker import WakeableWorker

log = structlog.get_logger(__name__)


def seconds(duration: str) -> float:
    return wall_time(duration).total_seconds()


@dataclass(frozen=True)
class _Parts:
    """What every timed pass works with: the store, the database threads, the settings, the
    wake-up of the senders of the outbox rows it queued, and the clock the slots are counted in."""

    engine: Engine
    executor: Executor
    settings: Settings
    on_queued: Callable[[], None]
    clock: Callable[[], dt.datetime] = field(default=utcnow)

    def once_per_slot(self, job: str, interval_seconds: float, *, drain: bool = False) -> OncePerSlot:
        return OncePerSlot(self.engine, job, interval_seconds, drain=drain, clock=self.clock)


class _QueuingWorker(WakeableWorker):
    """A timed pass over the store that may queue outbox rows, and then wakes their senders."""

    def __init__(self, name: str, parts: _Parts, *, poll_seconds: float) -> None:
        self._engine = parts.engine
        self._settings = parts.settings
        self._on_queued = parts.on_queued
        super().__init__(name, parts.executor, self._pass, poll_seconds=poll_seconds)

    def _pass(self) -> int:
        raise NotImplementedError


class SlaWorker(_QueuingWorker):
    """Keeps every ticket's deadlines current (every pass) and enforces them (once per slot of
    ``sla.check_seconds`` across the nodes) (intaked/sla/tracker.py, intaked/sla/enforcement.py)."""

    def __init__(self, parts: _Parts) -> None:
        self._context: SlaContext | None = None
        self._clock = parts.clock
        self.checks = parts.once_per_slot("sla_check", parts.settings.sla.check_seconds, drain=True)
        super().__init__("sla", parts, poll_seconds=max(60.0, parts.settings.sla.check_seconds))

    def _current_context(self) -> SlaContext:
        with read_only(self._engine).connect() as conn:
            overrides = load_overrides(conn)
        if self._context is None or overrides != self._context.overrides:
            first = self._context is None
            self._context = build_context(self._settings, overrides)
            changed = recompute_open(self._engine, self._context)
            log.info(
                "calendars_loaded" if first else "calendar_overrides_changed", tickets_recomputed=changed
            )
        return self._context

    def _pass(self) -> int:
        context = self._current_context()
        synced = sync_tickets(self._engine, context, self._clock(), on_resolved=resolved_elsewhere)
        checked = self.checks.run(lambda now: self._check(context, now)) or 0
        if checked:
            self._on_queued()
        return synced + checked

    def _check(self, context: SlaContext, now: dt.datetime) -> int:
        """The SLA's warnings and breaches, then the security incidents' (intaked/security/)."""
        return check_due(self._engine, context, now) + check_security(self._engine, self._settings, now)


class SweepWorker(WakeableWorker):
    """Closes resolved tickets whose time has come (intaked/sla/sweeper.py), once per slot of
    ``lifecycle.sweep_interval`` across the nodes, and prunes old ``job_runs`` rows."""

    def __init__(self, parts: _Parts) -> None:
        self._engine = parts.engine
        self._settings = parts.settings
        interval = seconds(parts.settings.lifecycle.sweep_interval)
        self.runs = parts.once_per_slot("sweep", interval)
        super().__init__("sweep", parts.executor, self._pass, poll_seconds=max(60.0, interval))

    def _pass(self) -> int:
        return self.runs.run(self._sweep) or 0

    def _sweep(self, now: dt.datetime) -> int:
        closed = sweep(self._engine, now, settings=self._settings)
        for ticket in closed:
            log.info("auto_closed", ticket=ticket.number, auto_close_at=ticket.auto_close_at.isoformat())
        pruned = prune_job_runs(self._engine, now)
        if pruned:
            log.debug("job_runs_pruned", rows=pruned)
        return len(closed)


class PagingWorker(_QueuingWorker):
    """Starts pages for tickets that became P1/P2 and runs due escalation steps (intaked/paging/steps.py)
    on every node, in no slot: each step is fenced by its page's row and token (see above)."""

    def __init__(self, parts: _Parts) -> None:
        super().__init__("paging", parts, poll_seconds=max(10.0, parts.settings.paging.check_seconds))

    def _pass(self) -> int:
        done = start_pages_for_priorities(self._engine, self._settings)
        done += run_due(self._engine, self._settings)
        # Pages started elsewhere (``intaked ticket triage`` in its own process) queued their SMS
        # and calls without a way to wake our sender: look for due ones on every pass.
        if done or page_sends_due(self._engine):
            self._on_queued()
        return done


class HotlineReconcileWorker(_QueuingWorker):
    """Ingests hotline calls whose webhooks were lost, from Twilio's Calls list, on start and every
    ``hotline.reconcile_interval``, once per slot across the nodes (intaked/hotline/reconcile.py)."""

    def __init__(self, parts: _Parts, phone: PhoneProvider) -> None:
        self._client = phone
        poll = seconds(parts.settings.hotline.reconcile_interval)
        self.runs = parts.once_per_slot("hotline_reconcile", poll)
        super().__init__("hotline_reconcile", parts, poll_seconds=poll)

    def _pass(self) -> int:
        self.runs.run(self._reconcile)
        return 0  # the next pass waits for the interval

    def _reconcile(self, now: dt.datetime) -> int:
        filed = reconcile_calls(self._engine, self._settings, self._client, now)
        applied = reconcile_recordings(self._engine, self._settings, self._client, now)
        if filed + applied:
            self._on_queued()  # the acknowledgements of the calls it filed, the downloads it queued
        return filed + applied


class ReportWorker(_QueuingWorker):
    """Queues the scheduled service-level reports that are due (intaked/reports/schedule.py), once
    per slot of ``reports.check_seconds`` across the nodes."""

    def __init__(self, parts: _Parts) -> None:
        interval = parts.settings.reports.check_seconds
        self.runs = parts.once_per_slot("reports", interval)
        super().__init__("reports", parts, poll_seconds=interval)

    def _pass(self) -> int:
        queued = self.runs.run(lambda now: queue_due_reports(self._engine, self._settings, now)) or 0
        if queued:
            self._on_queued()
        return queued


def on_the_loop(wake: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    """A job that calls ``wake`` on the event loop. APScheduler runs a plain function on a thread
    of the loop's default executor, a hop for nothing, and one cancelled by the shutdown is logged
    as an error; a coroutine job runs on the loop itself."""

    async def job() -> None:
        wake()

    return job


class Scheduler:
    """The working-time workers and the APScheduler jobs that wake them."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        settings: Settings,
        on_queued: Callable[[], None],
        phone: PhoneProvider | None = None,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        """``phone``: the process's phone provider (hotline reconciliation runs with it only);
        ``clock``: the time the timed passes run at and their slots are counted in."""
        parts = _Parts(engine, executor, settings, on_queued, clock)
        self.sla = SlaWorker(parts)
        self.sweeper = SweepWorker(parts)
        # Always: without any policy it still marks tool-written P1/P2 tickets ``page_not_started``.
        self.paging = PagingWorker(parts)
        self.hotline = (
            HotlineReconcileWorker(parts, phone)
            if phone is not None and settings.twilio.enabled and settings.hotline.enabled
            else None
        )
        self.reports = ReportWorker(parts) if settings.reports.enabled else None
        self._settings = settings
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)

    def _timed(self) -> list[tuple[WakeableWorker, float]]:
        """The workers an APScheduler job wakes, each with its interval in seconds (the hotline
        reconciliation is not one: its own poll interval times it)."""
        timed: list[tuple[WakeableWorker, float]] = [
            (self.sla, self._settings.sla.check_seconds),
            (self.sweeper, seconds(self._settings.lifecycle.sweep_interval)),
            (self.paging, self._settings.paging.check_seconds),
        ]
        if self.reports is not None:
            timed.append((self.reports, self._settings.reports.check_seconds))
        return timed

    def start(self) -> None:
        for worker, interval in self._timed():
            worker.start()
            self._scheduler.add_job(
                on_the_loop(worker.wake),
                "interval",
                seconds=interval,
                id=worker.name,
                coalesce=True,
                max_instances=1,
            )
        if self.hotline is not None:
            self.hotline.start()  # a pass at once, then every hotline.reconcile_interval
        self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for worker, _ in self._timed():
            await worker.stop()
        if self.hotline is not None:
            await self.hotline.stop()
