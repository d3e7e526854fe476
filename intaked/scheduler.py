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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class _Parts:
    """What every timed pass works with: the store, the database threads, the settings, and the
    wake-up of the senders of the outbox rows it queued."""

    engine: Engine
    executor: Executor
    settings: Settings
    on_queued: Callable[[], None]


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
    """Keeps every ticket's deadlines current and enforces them (intaked/sla/tracker.py)."""

    def __init__(self, parts: _Parts) -> None:
        self._context: SlaContext | None = None
        super().__init__("sla", parts, poll_seconds=max(60.0, parts.settings.sla.check_seconds))

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

    def __init__(self, parts: _Parts) -> None:
        self._engine = parts.engine
        poll = max(60.0, seconds(parts.settings.lifecycle.sweep_interval))
        super().__init__("sweep", parts.executor, self._pass, poll_seconds=poll)

    def _pass(self) -> int:
        closed = sweep(self._engine)
        for ticket in closed:
            log.info("auto_closed", ticket=ticket.number, auto_close_at=ticket.auto_close_at.isoformat())
        return len(closed)


class PagingWorker(_QueuingWorker):
    """Starts pages for tickets that became P1/P2 and runs due escalation steps (intaked/paging/steps.py)."""

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
    ``hotline.reconcile_interval`` (intaked/hotline/reconcile.py)."""

    def __init__(self, parts: _Parts, phone: PhoneProvider) -> None:
        self._client = phone
        poll = seconds(parts.settings.hotline.reconcile_interval)
        super().__init__("hotline_reconcile", parts, poll_seconds=poll)

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
        parts = _Parts(engine, executor, settings, on_queued)
        self.sla = SlaWorker(parts)
        self.sweeper = SweepWorker(parts)
        # Always: without any policy it still marks tool-written P1/P2 tickets ``page_not_started``.
        self.paging = PagingWorker(parts)
        self.hotline = (
            HotlineReconcileWorker(parts, phone)
            if phone is not None and settings.twilio.enabled and settings.hotline.enabled
            else None
        )
        self._settings = settings
        self._scheduler = AsyncIOScheduler(timezone=dt.UTC)

    def _timed(self) -> list[tuple[WakeableWorker, float]]:
        """The workers an APScheduler job wakes, each with its interval in seconds (the hotline
        reconciliation is not one: its own poll interval times it)."""
        return [
            (self.sla, self._settings.sla.check_seconds),
            (self.sweeper, seconds(self._settings.lifecycle.sweep_interval)),
            (self.paging, self._settings.paging.check_seconds),
        ]

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
