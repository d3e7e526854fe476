"""The back office: the daemon's second process, which turns captured items into tickets and
sends what the outbox holds.

The daemon's front process speaks to the outside world (SMTP sessions, IMAP mailboxes) and
commits what it receives to the intake ledger; its latency is what senders see. Parsing, threading,
ticket creation and sending acknowledgements are heavier and can wait a moment. In one
interpreter the two share one GIL, and a burst of ticket creation delays every SMTP reply; so the
front starts this process (``python -m intaked.backoffice``) and wakes it through a pipe whenever
it committed something. Work is handed over through the database alone (ledger claims, outbox
claims), so nothing is lost if either process dies.

There are two such processes by default: ``intake`` (captured items into tickets), started by the
front, and ``outbox`` (sending), started by the intake process, which wakes it when it queued
mail; each has a core's worth of interpreter to itself.

Start-up never waits for a back office: a parent spawns it and goes on (the front opens its
listeners, the intake process starts its processor); :meth:`BackOfficeProcess.start` returns at
once, and the supervisor task hands over the settings, waits for "ready", logs
``back_office_ready`` and restarts the process when it dies, or when it fails to start
(``back_office_start_failed``, an error), with a pause that doubles up to 30 s. Meanwhile what
arrives waits in the ledger (or the outbox): wake-ups written before the child reads them stay in
the pipe, and every worker makes a pass when it starts anyway.

Protocol with the parent: the settings arrive pickled on stdin; the command line names the role
and the file descriptor of the wake pipe's read end. Each byte read is a wake-up: ``i`` for newly
captured items, ``o`` for newly queued outbox rows (a webhook's), so a burst of mail does not
also make the sender look for work on every commit; any other byte wakes both. End of file
means "stop": finish turning what is captured into tickets, then exit 0. The process dies with
its parent (``PR_SET_PDEATHSIG``), as systemd would kill it with the service; the claims let the
next start take over. "ready" on stdout tells the parent that start-up is done.

This module is imported by the front for :class:`BackOfficeProcess`, so it imports the roles'
workers (parsing, SLA, routing, the Twilio client) only in the process that runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import structlog

from intaked.config import Settings
from intaked.logs import configure_logging
from intaked.memory import tune_allocator
from intaked.processes import die_with_parent
from intaked.store.engine import engine_for
from intaked.store.liveness import LivenessKeeper, set_node_name

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from intaked.intake.parsepool import ParsePool
    from intaked.ports.phone import PhoneProvider

log = structlog.get_logger(__name__)

READY = b"ready\n"
WAKE_INTAKE = b"i"  # new items in the intake ledger
WAKE_OUTBOX = b"o"  # new rows in the outbox
ROLE_INTAKE = "intake"
ROLE_OUTBOX = "outbox"
ROLES = (ROLE_INTAKE, ROLE_OUTBOX)
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 300.0
RESTART_PAUSE_SECONDS = (1.0, 30.0)  # first and longest pause before restarting a back office
EXIT_FAILED = 1
STEADY_RUN_SECONDS = 60.0  # a process that ran this long died of something new: restart quickly again

Stopper = Callable[[], Awaitable[None]]


class BackOfficeProcess:
    """A parent's handle on a back office process: start, wake, supervise, stop."""

    def __init__(self, settings: Settings, role: str = ROLE_INTAKE) -> None:
        self._settings = settings
        self.role = role
        self._proc: subprocess.Popen[bytes] | None = None
        self._wake_fd: int | None = None
        self._stopping = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn the process and return at once (from the event loop); the supervisor task waits
        for it to be ready and restarts it whenever it dies or fails to start."""
        self._spawn_logging_failure()
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"back-office-{self.role}"
        )

    def _spawn_logging_failure(self) -> None:
        try:
            self._spawn()
        except OSError as exc:  # no process (out of memory, file descriptors): the supervisor retries
            log.error("back_office_spawn_failed", role=self.role, error=str(exc))
            self._proc = None

    def _spawn(self) -> None:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(write_fd, False)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "intaked.backoffice", self.role, str(read_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(read_fd,),
            )
        except OSError:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        self._proc, self._wake_fd = proc, write_fd
        log.info("back_office_spawned", role=self.role, pid=proc.pid)

    def wake(self) -> None:
        """Tell the back office new items were captured (safe from any thread; never blocks)."""
        self._send(WAKE_INTAKE)

    def wake_outbox(self) -> None:
        """Tell the back office's sender new outbox rows were queued (safe from any thread)."""
        self._send(WAKE_OUTBOX)

    def _send(self, what: bytes) -> None:
        fd = self._wake_fd
        if fd is None:  # between a death and the restart: the new process starts with a pass
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
            os.write(fd, what)  # a full pipe means a wake-up is already pending

    async def _supervise(self) -> None:
        pause = RESTART_PAUSE_SECONDS[0]
        while not self._stopping.is_set():
            started = time.monotonic()
            proc = self._proc
            was_ready, code = await self._watch(proc) if proc is not None else (False, None)
            if self._stopping.is_set():
                return
            self._discard()
            if time.monotonic() - started > STEADY_RUN_SECONDS:
                pause = RESTART_PAUSE_SECONDS[0]
            log.error(
                "back_office_died" if was_ready else "back_office_start_failed",
                role=self.role,
                pid=proc.pid if proc is not None else None,
                exit_code=code,
                restart_in_seconds=pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            if self._stopping.is_set():
                return
            pause = min(pause * 2, RESTART_PAUSE_SECONDS[1])
            self._spawn_logging_failure()

    async def _watch(self, proc: subprocess.Popen[bytes]) -> tuple[bool, int]:
        """One process's life: hand it the settings, wait for "ready" (at most
        ``START_TIMEOUT_SECONDS``), then for its end; returns whether it was ready, and its exit code."""
        loop = asyncio.get_running_loop()
        stdin, stdout = proc.stdin, proc.stdout
        assert stdin is not None and stdout is not None

        def hand_over() -> bytes:
            try:
                stdin.write(pickle.dumps(self._settings))
                stdin.close()
            except OSError:  # it died before reading: its exit code tells why
                return b""
            return stdout.readline()

        try:
            line = await asyncio.wait_for(loop.run_in_executor(None, hand_over), START_TIMEOUT_SECONDS)
        except TimeoutError:
            line = b""
            log.error(
                "back_office_start_timeout", role=self.role, pid=proc.pid, seconds=START_TIMEOUT_SECONDS
            )
            if proc.poll() is None:
                proc.kill()
        if line == READY:
            log.info("back_office_ready", role=self.role, pid=proc.pid)
        code = await loop.run_in_executor(None, proc.wait)
        return line == READY, code

    async def stop(self) -> None:
        """Ask the back office to finish what is captured and exit; wait for it."""
        self._stopping.set()
        proc = self._proc
        self._close_wake()  # end of file: stop
        if proc is not None:
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(loop.run_in_executor(None, proc.wait), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                log.error("back_office_stop_timeout", role=self.role, pid=proc.pid)
                proc.kill()
                await loop.run_in_executor(None, proc.wait)
        if self._supervisor is not None:
            await self._supervisor
            self._supervisor = None
        self._discard()

    def _discard(self) -> None:
        """Close our ends of a process that has exited."""
        self._close_wake()
        proc = self._proc
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    def _close_wake(self) -> None:
        if self._wake_fd is not None:
            os.close(self._wake_fd)
            self._wake_fd = None


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
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="intaked-db")
    engine = engine_for(settings, sqlite_synchronous="NORMAL" if role == ROLE_OUTBOX else "FULL")
    stop = asyncio.Event()
    stoppers: list[Stopper] = []
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
            wake_outbox = outbox.wake
        if role == ROLE_INTAKE:
            wake_intake = await _start_intake(
                engine, executor, settings, wake_outbox, stoppers, keeper, phone
            )
        # Take up what dead workers left (at once for those of this node), then keep beating.
        await loop.run_in_executor(executor, keeper.start)
        keeper_started = True

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

        os.set_blocking(wake_fd, False)
        loop.add_reader(wake_fd, on_wake)  # wake-ups written meanwhile are waiting in the pipe
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        sys.stdout.buffer.write(READY)
        sys.stdout.buffer.flush()
        await stop.wait()
        log.info("back_office_stopping", role=role)
    finally:
        for stopper in stoppers:
            await stopper()
        if keeper_started:
            await loop.run_in_executor(executor, keeper.stop)
        executor.shutdown(wait=True)
        engine.dispose()


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


def main(argv: list[str]) -> int:
    die_with_parent()
    tune_allocator()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the front decides
    settings = pickle.load(sys.stdin.buffer)
    assert isinstance(settings, Settings)
    role, wake_fd = argv
    if role not in ROLES:
        raise SystemExit(f"unknown back office role {role!r}: one of {', '.join(ROLES)}")
    configure_logging(settings.logging.level, settings.logging.format, process=f"back_office.{role}")
    set_node_name(settings.daemon.node_name)
    try:
        asyncio.run(run_back_office(settings, role, int(wake_fd)))
    except Exception:  # the parent logs our exit and starts us again; say why here
        log.exception("back_office_failed", role=role)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
