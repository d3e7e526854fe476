"""What a back office process runs: its role's workers (the intake processor and the timed jobs;
the outbox dispatchers), woken through the pipe from its parent until the pipe closes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import structlog

from intaked.backoffice import (
    READY,
    ROLE_INTAKE,
    ROLE_OUTBOX,
    TICK_CHILD_SILENT,
    TICK_WELL,
    WAKE_INTAKE,
    WAKE_OUTBOX,
    BackOfficeProcess,
    Stopper,
)
from intaked.config import Settings
from intaked.metrics.observed import count_failed_pass
from intaked.store.engine import engine_for
from intaked.store.liveness import LivenessKeeper
from intaked.worker import WakeableWorker

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from intaked.intake.parsepool import ParsePool
    from intaked.ports.phone import PhoneProvider

log = structlog.get_logger(__name__)


async def run_back_office(settings: Settings, role: str, wake_fd: int) -> None:
    """A back office process's life: start its workers, serve wake-ups until the pipe closes,
    then stop (the intake role first turns everything captured into tickets).

    ``intake``: the intake processor and the timed working-time work (intaked/scheduler.py); it
    starts the ``outbox`` role as its own child process (``daemon.outbox = "process"``, without
    waiting for it to be ready) and wakes it whenever it queued something, or runs the
    dispatchers itself. ``outbox``: the outbox dispatchers alone (mail; SMS and calls through
    Twilio, and the voicemail fetcher, when ``twilio.account_sid`` is set).
    """
    loop = asyncio.get_running_loop()
    WakeableWorker.count_failed_pass = count_failed_pass  # served by the front's /metrics
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="intaked-db")
    engine = engine_for(settings, sqlite_synchronous="NORMAL" if role == ROLE_OUTBOX else "FULL")
    stop = asyncio.Event()
    stoppers: list[Stopper] = []
    children: list[BackOfficeProcess] = []
    wake_intake: Callable[[], None] | None = None
    keeper = LivenessKeeper(
        engine,
        role=f"back_office.{role}",
        heartbeat_seconds=settings.daemon.heartbeat_seconds,
        lease_seconds=settings.daemon.lease_seconds,
    )
    keeper_started = False
    from intaked.twilio.client import phone_provider

    phone = phone_provider(settings)  # this process's one phone provider (None without Twilio)
    try:
        if role == ROLE_OUTBOX or settings.daemon.outbox == "inline":
            wake_outbox = await _start_senders(engine, executor, settings, stoppers, keeper, phone)
        else:
            outbox = BackOfficeProcess(settings, ROLE_OUTBOX)
            outbox.start()  # spawned now, at our priority (the front's); ready when it is
            stoppers.append(outbox.stop)
            children.append(outbox)
            wake_outbox = outbox.wake
        if role == ROLE_INTAKE:
            wake_intake = await _start_intake(
                engine, executor, settings, wake_outbox, stoppers, keeper, phone
            )
        # Take up what dead workers left (at once for those of this node), then keep beating.
        await loop.run_in_executor(executor, keeper.start)
        keeper_started = True

        on_wake = _wake_handler(loop, wake_fd, stop, wake_intake, wake_outbox)
        os.set_blocking(wake_fd, False)
        loop.add_reader(wake_fd, on_wake)  # wake-ups written meanwhile are waiting in the pipe
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        ticks = _say_ready(loop, settings.daemon.heartbeat_seconds, children)
        await stop.wait()
        log.info("back_office_stopping", role=role)
        ticks.cancel()
    finally:
        for stopper in stoppers:
            await stopper()
        if keeper_started:
            await loop.run_in_executor(executor, keeper.stop)
        executor.shutdown(wait=True)
        engine.dispose()


def _say_ready(
    loop: asyncio.AbstractEventLoop, every: float, children: list[BackOfficeProcess]
) -> asyncio.Task[None]:
    """Tell the parent we are ready, then tick to it (:func:`_tick`) until the task is cancelled."""
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    return loop.create_task(_tick(sys.stdout.fileno(), every, children), name="back-office-ticks")


async def _tick(fd: int, every: float, children: list[BackOfficeProcess]) -> None:
    """Tell the parent, every ``every`` seconds, that this loop runs (and whether our own children
    do); never blocks: a parent that does not read loses ticks, not our time."""
    os.set_blocking(fd, False)
    told: list[str] = []
    while True:
        troubles = [trouble for child in children if (trouble := child.trouble()) is not None]
        if troubles != told:
            if troubles:
                log.error("back_office_child_silent", reasons=troubles)
            told = troubles
        with contextlib.suppress(OSError):
            os.write(fd, TICK_CHILD_SILENT if troubles else TICK_WELL)
        await asyncio.sleep(every)


def _wake_handler(
    loop: asyncio.AbstractEventLoop,
    wake_fd: int,
    stop: asyncio.Event,
    wake_intake: Callable[[], None] | None,
    wake_outbox: Callable[[], None],
) -> Callable[[], None]:
    """The reader of the wake pipe: each byte wakes the intake processor (``i``), the senders
    (``o``) or both (any other); end of file sets ``stop``. The outbox role has no ``wake_intake``."""

    def on_wake() -> None:
        try:
            data = os.read(wake_fd, 4096)
        except BlockingIOError:
            return
        if not data:  # the parent closed the pipe (or died): stop
            loop.remove_reader(wake_fd)
            stop.set()
            return
        if wake_intake is None:  # the outbox role: every byte is for the sender
            wake_outbox()
            return
        if data.strip(WAKE_OUTBOX):  # anything but "o": captured items
            wake_intake()
        if data.strip(WAKE_INTAKE):  # anything but "i": outbox rows
            wake_outbox()

    return on_wake


async def _start_senders(
    engine: Engine,
    executor: ThreadPoolExecutor,
    settings: Settings,
    stoppers: list[Stopper],
    keeper: LivenessKeeper,
    phone: PhoneProvider | None,
) -> Callable[[], None]:
    """Start the outbox dispatchers (mail; with Twilio, SMS, calls and voicemail downloads),
    and their share of recovery; returns the function that wakes them."""
    from intaked.outbound.dispatcher import OutboxDispatcher, smtp_relay
    from intaked.outbound.outbox import recovery

    dispatcher = OutboxDispatcher(engine, executor, settings, smtp_relay(settings))
    dispatcher.start()
    stoppers.append(dispatcher.stop)
    if phone is None:
        keeper.add_recovery(recovery(settings, dispatcher.wake))
        return dispatcher.wake
    from intaked.hotline.fetcher import VoicemailFetcher
    from intaked.paging.outcomes import attempt_updated
    from intaked.twilio.dispatcher import TwilioDispatcher

    pager = TwilioDispatcher(engine, executor, settings, phone, attempt_updated)  # page SMS and calls
    pager.start()
    stoppers.append(pager.stop)
    voicemail = VoicemailFetcher(engine, executor, settings, phone)  # recordings to download
    voicemail.start()
    stoppers.append(voicemail.stop)
    keeper.add_recovery(recovery(settings, _both(_both(dispatcher.wake, pager.wake), voicemail.wake)))
    return _both(dispatcher.wake, pager.wake)


async def _start_intake(
    engine: Engine,
    executor: ThreadPoolExecutor,
    settings: Settings,
    wake_outbox: Callable[[], None],
    stoppers: list[Stopper],
    keeper: LivenessKeeper,
    phone: PhoneProvider | None,
) -> Callable[[], None]:
    """Start the intake processor (with its parse workers), the timed jobs and their share of
    recovery; returns the function that wakes the processor."""
    from intaked.intake.parsepool import ParsePool
    from intaked.intake.processor import IntakeProcessor
    from intaked.routing.decide import warm_up_routing
    from intaked.scheduler import Scheduler
    from intaked.sla.context import warm_up

    # Below the front (and the outbox, started before with our priority): what senders wait
    # for comes first. The parse workers, started next, inherit it. (Not before the imports
    # above: on a busy machine they would take seconds at the lower priority, and mail waits.)
    lower_priority(settings.daemon.back_office_nice)
    loop = asyncio.get_running_loop()
    intake = settings.intake
    parser = ParsePool(intake.parse_workers, intake.parse_timeout_seconds)
    stoppers.insert(0, _closing(parser))
    # Not in the first ticket's transaction: the parse workers start (in their own processes)
    # while this one builds the calendars and compiles the routing rules.
    await asyncio.gather(
        loop.run_in_executor(executor, parser.warm_up),
        loop.run_in_executor(executor, warm_up, engine, settings),
        loop.run_in_executor(executor, warm_up_routing, settings),
    )
    scheduler = Scheduler(engine, executor, settings, on_queued=wake_outbox, phone=phone)
    scheduler.start()
    stoppers.insert(0, scheduler.stop)

    # New tickets get their triage deadline on the next SLA pass (sla.check_seconds).
    processor = IntakeProcessor(engine, executor, settings, parser=parser, on_stored=lambda _: wake_outbox())
    processor.start()  # its first pass takes what was captured before we were ready
    stoppers.insert(0, processor.stop)  # first: turn what is captured into tickets
    keeper.add_recovery(processor.recovery())
    return processor.wake


def lower_priority(increment: int) -> None:
    """Add ``increment`` to this process's niceness (never raises: a refusal is only logged)."""
    if increment <= 0:
        return
    try:
        os.nice(increment)
    except OSError as exc:
        log.warning("back_office_nice_refused", increment=increment, error=str(exc))


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def wake() -> None:
        first()
        second()

    return wake


def _closing(parser: ParsePool) -> Stopper:
    async def close() -> None:
        parser.close()

    return close
