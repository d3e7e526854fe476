"""Timed work: APScheduler wakes the working-time workers; the database decides what is due.

Jobs do nothing but wake a worker (``sla.check_seconds``: deadlines and warnings;
``lifecycle.sweep_interval``: the auto-close sweep; ``paging.check_seconds``: pages to start and
escalation steps that are due; ``hotline.reconcile_interval``: calls whose webhooks were lost,
from Twilio's Calls list). The workers run their passes on database
threads; a pass that runs twice, or on two daemons at once, does no harm (advisory locks on
PostgreSQL, conditional updates, outbox idempotency keys).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.hotline.reconcile import reconcile_calls, reconcile_recordings
from intaked.paging.pages import start_pages_for_priorities
from intaked.paging.queries import page_sends_due
from intaked.paging.steps import run_due
from intaked.ports.phone import PhoneProvider
from intaked.sla.context import SlaContext, build_context, load_overrides
from intaked.sla.enforcement import check_due
from intaked.sla.sweeper import sweep
from intaked.sla.targets import wall_time
from intaked.sla.tracker import recompute_open, sync_tickets
from intaked.store.engine import read_only
from intaked.worker import WakeableWorker

log = structlog.get_logger(__name__)


def seconds(duration: str) -> float:
    return wall_time(duration).total_seconds()


class _QueuingWorker(WakeableWorker):
    """A timed pass over the store that may queue outbox rows, and then wakes their senders."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        executor: Executor,
        settings: Settings,
        on_queued: Callable[[], None],
        *,
        poll_seconds: float,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._on_queued = on_queued
        super().__init__(name, executor, self._pass, poll_seconds=poll_seconds)

    def _pass(self) -> int:
        raise NotImplementedError


class SlaWorker(_QueuingWorker):
    """Keeps every ticket's deadlines current and enforces them (intaked/sla/tracker.py)."""

    def __init__(
        self, engine: Engine, executor: Executor, settings: Settings, on_queued: Callable[[], None]
    ) -> None:
        self._context: SlaContext | None = None
        poll = max(60.0, settings.sla.check_seconds)
        super().__init__("sla", engine, executor, settings, on_queued, poll_seconds=poll)

    def _pass(self) -> int:
        with read_only(self._engine).connect() as conn:
            overrides = load_overrides(conn)
        if self._context is None or overrides != self._context.overrides:
            first = self._context is None
            self._context = build_context(self._settings, overrides)
            changed = recompute_open(self._engine, self._context)
            log.info(
                "calendars_loaded" if first else "calendar_overrides_changed", tickets_recomputed=changed
            )
        synced = sync_tickets(self._engine, self._context)
        checked = check_due(self._engine, self._context)
        if checked:
            self._on_queued()
        return synced + checked


class SweepWorker(WakeableWorker):
    """Closes resolved tickets whose time has come (intaked/sla/sweeper.py)."""

    def __init__(self, engine: Engine, executor: Executor, settings: Settings) -> None:
        self._engine = engine
        super().__init__(
            "sweep", executor, self._pass, poll_seconds=max(60.0, seconds(settings.lifecycle.sweep_interval))
        )

    def _pass(self) -> int:
        closed = sweep(self._engine)
        for ticket in closed:
            log.info("auto_closed", ticket=ticket.number, auto_close_at=ticket.auto_close_at.isoformat())
        return len(closed)


class PagingWorker(_QueuingWorker):
    """Starts pages for tickets that became P1/P2 and runs due escalation steps (intaked/paging/steps.py)."""

    def __init__(
        self, engine: Engine, executor: Executor, settings: Settings, on_queued: Callable[[], None]
    ) -> None:
        poll = max(10.0, settings.paging.check_seconds)
        super().__init__("paging", engine, executor, settings, on_queued, poll_seconds=poll)

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
    ``hotline.reconcile_interval`` (intaked/hotline/reconcile.py)."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        settings: Settings,
        on_queued: Callable[[], None],
        phone: PhoneProvider,
    ) -> None:
        self._client = phone
        poll = seconds(settings.hotline.reconcile_interval)
        super().__init__("hotline_reconcile", engine, executor, settings, on_queued, poll_seconds=poll)

    def _pass(self) -> int:
        filed = reconcile_calls(self._engine, self._settings, self._client)
        if filed + reconcile_recordings(self._engine, self._settings, self._client):
            self._on_queued()  # the acknowledgements of the calls it filed, the downloads it queued
        return 0  # the next pass waits for the interval


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
    ) -> None:
        """``phone``: the process's phone provider (hotline reconciliation runs with it only)."""
        self.sla = SlaWorker(engine, executor, settings, on_queued)
        self.sweeper = SweepWorker(engine, executor, settings)
        # Always: without any policy it still marks tool-written P1/P2 tickets ``page_not_started``.
        self.paging = PagingWorker(engine, executor, settings, on_queued)
        self.hotline = (
            HotlineReconcileWorker(engine, executor, settings, on_queued, phone)
            if phone is not None and settings.twilio.enabled and settings.hotline.enabled
            else None
        )
        self._settings = settings
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)

    def start(self) -> None:
        self.sla.start()
        self.sweeper.start()
        self._scheduler.add_job(
            on_the_loop(self.sla.wake),
            "interval",
            seconds=self._settings.sla.check_seconds,
            id="sla",
            coalesce=True,
            max_instances=1,
        )
        self._scheduler.add_job(
            on_the_loop(self.sweeper.wake),
            "interval",
            seconds=seconds(self._settings.lifecycle.sweep_interval),
            id="sweep",
            coalesce=True,
            max_instances=1,
        )
        self.paging.start()
        self._scheduler.add_job(
            on_the_loop(self.paging.wake),
            "interval",
            seconds=self._settings.paging.check_seconds,
            id="paging",
            coalesce=True,
            max_instances=1,
        )
        if self.hotline is not None:
            self.hotline.start()  # a pass at once, then every hotline.reconcile_interval
        self._scheduler.start()

    async def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        await self.sla.stop()
        await self.sweeper.stop()
        await self.paging.stop()
        if self.hotline is not None:
            await self.hotline.stop()
