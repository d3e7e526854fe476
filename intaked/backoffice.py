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

Protocol with the parent: the settings arrive pickled on stdin; the command line names the role
and the file descriptor of the wake pipe's read end. Each byte read is a wake-up: ``i`` for newly
captured items, ``o`` for newly queued outbox rows (a webhook's), so a burst of mail does not
also make the sender look for work on every commit; any other byte wakes both. End of file
means "stop": finish turning what is captured into tickets, then exit 0. The process dies with
its parent (``PR_SET_PDEATHSIG``), as systemd would kill it with the service; the claims let the
next start take over. "ready" on stdout tells the parent that start-up is done.
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

import structlog

from intaked.config import Settings
from intaked.hotline.fetcher import VoicemailFetcher
from intaked.intake.parsepool import ParsePool
from intaked.intake.processor import IntakeProcessor
from intaked.logs import configure_logging
from intaked.memory import tune_allocator
from intaked.outbound.dispatcher import OutboxDispatcher
from intaked.outbound.twilio_dispatcher import TwilioDispatcher
from intaked.processes import die_with_parent
from intaked.routing.decide import warm_up_routing
from intaked.scheduler import Scheduler
from intaked.sla.context import warm_up
from intaked.store.engine import engine_for

log = structlog.get_logger(__name__)

READY = b"ready\n"
WAKE_INTAKE = b"i"  # new items in the intake ledger
WAKE_OUTBOX = b"o"  # new rows in the outbox
ROLE_INTAKE = "intake"
ROLE_OUTBOX = "outbox"
ROLES = (ROLE_INTAKE, ROLE_OUTBOX)
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 300.0
RESTART_PAUSE_SECONDS = (1.0, 30.0)  # first and longest pause before restarting a dead back office


class BackOfficeUnavailable(Exception):
    """The back office process did not start."""


class BackOfficeProcess:
    """A parent's handle on a back office process: start, wake, supervise, stop."""

    def __init__(self, settings: Settings, role: str = "intake") -> None:
        self._settings = settings
        self.role = role
        self._proc: subprocess.Popen[bytes] | None = None
        self._wake_fd: int | None = None
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name="back-office")

    async def _spawn(self) -> None:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(write_fd, False)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "intaked.backoffice", self.role, str(read_fd)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(read_fd,),
            )
        finally:
            os.close(read_fd)
        self._proc, self._wake_fd = proc, write_fd
        assert proc.stdin is not None and proc.stdout is not None
        loop = asyncio.get_running_loop()
        stdin, stdout = proc.stdin, proc.stdout

        def hand_over() -> bytes:
            stdin.write(pickle.dumps(self._settings))
            stdin.close()
            return stdout.readline()

        try:
            line = await asyncio.wait_for(loop.run_in_executor(None, hand_over), START_TIMEOUT_SECONDS)
        except (TimeoutError, OSError) as exc:
            self._kill()
            raise BackOfficeUnavailable(f"the back office process did not start: {exc!r}") from None
        if line != READY:
            code = await loop.run_in_executor(None, proc.wait)
            self._kill()
            raise BackOfficeUnavailable(f"the back office process exited during start-up (exit code {code})")
        log.info("back_office_started", role=self.role, pid=proc.pid)

    def wake(self) -> None:
        """Tell the back office new items were captured (safe from any thread; never blocks)."""
        self._send(WAKE_INTAKE)

    def wake_outbox(self) -> None:
        """Tell the back office's sender new outbox rows were queued (safe from any thread)."""
        self._send(WAKE_OUTBOX)

    def _send(self, what: bytes) -> None:
        fd = self._wake_fd
        if fd is None:
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError, OSError):
            os.write(fd, what)  # a full pipe means a wake-up is already pending

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        pause = RESTART_PAUSE_SECONDS[0]
        while not self._stopping:
            proc = self._proc
            if proc is None:
                return
            started = time.monotonic()
            code = await loop.run_in_executor(None, proc.wait)
            if self._stopping:
                return
            log.error(
                "back_office_died", role=self.role, pid=proc.pid, exit_code=code, restart_in_seconds=pause
            )
            self._close_wake()
            if proc.stdout is not None:
                proc.stdout.close()
            await asyncio.sleep(pause)
            if self._stopping:
                return
            pause = (
                RESTART_PAUSE_SECONDS[0]
                if time.monotonic() - started > 60
                else min(pause * 2, RESTART_PAUSE_SECONDS[1])
            )
            try:
                await self._spawn()
            except BackOfficeUnavailable as exc:
                log.error("back_office_restart_failed", error=str(exc))
                self._proc = None
                return

    async def stop(self) -> None:
        """Ask the back office to finish what is captured and exit; wait for it."""
        self._stopping = True
        proc = self._proc
        self._close_wake()  # end of file: stop
        if proc is not None:
            loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(loop.run_in_executor(None, proc.wait), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                log.error("back_office_stop_timeout", pid=proc.pid)
                self._kill()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._supervisor is not None:
            await self._supervisor
            self._supervisor = None

    def _close_wake(self) -> None:
        if self._wake_fd is not None:
            os.close(self._wake_fd)
            self._wake_fd = None

    def _kill(self) -> None:
        self._close_wake()
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


async def run_back_office(settings: Settings, role: str, wake_fd: int) -> None:
    """A back office process's life: start its workers, serve wake-ups until the pipe closes,
    then stop (the intake role first turns everything captured into tickets).

    ``intake``: the intake processor and the timed working-time work (intaked/scheduler.py); it
    starts the ``outbox`` role as its own child process (``daemon.outbox = "process"``) and wakes
    it whenever it queued something, or runs the dispatchers itself. ``outbox``: the outbox
    dispatchers alone (mail; SMS and calls through Twilio, and the voicemail fetcher, when
    ``twilio.account_sid`` is set).
    """
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="intaked-db")
    engine = engine_for(settings, sqlite_synchronous="NORMAL" if role == ROLE_OUTBOX else "FULL")
    stop = asyncio.Event()
    stoppers: list[Callable[[], Awaitable[None]]] = []
    wake_intake: Callable[[], None] | None = None
    wake_outbox: Callable[[], None]
    try:
        if role == ROLE_OUTBOX or settings.daemon.outbox == "inline":
            dispatcher = OutboxDispatcher(engine, executor, settings)
            await dispatcher.recover()
            dispatcher.start()
            stoppers.append(dispatcher.stop)
            wake_outbox = dispatcher.wake
            if settings.twilio.enabled:  # SMS and calls of pages, beside the mail
                pager = TwilioDispatcher(engine, executor, settings)
                pager.start()
                stoppers.append(pager.stop)
                wake_outbox = _both(dispatcher.wake, pager.wake)
                voicemail = VoicemailFetcher(engine, executor, settings)  # recordings to download
                voicemail.start()
                stoppers.append(voicemail.stop)
        else:
            outbox = BackOfficeProcess(settings, ROLE_OUTBOX)
            await outbox.start()
            stoppers.append(outbox.stop)
            wake_outbox = outbox.wake
        if role == ROLE_INTAKE:
            # Below the front (and the outbox, started above with our priority): what senders
            # wait for comes first. The parse workers, started next, inherit it.
            lower_priority(settings.daemon.back_office_nice)
            intake = settings.intake
            parser = ParsePool(intake.parse_workers, intake.parse_timeout_seconds)
            stoppers.insert(0, _closing(parser))
            await loop.run_in_executor(executor, parser.warm_up)
            await loop.run_in_executor(executor, warm_up, engine, settings)
            await loop.run_in_executor(executor, warm_up_routing, settings)
            scheduler = Scheduler(engine, executor, settings, on_queued=wake_outbox)
            scheduler.start()
            stoppers.insert(0, scheduler.stop)

            # New tickets get their triage deadline on the next SLA pass (sla.check_seconds).
            processor = IntakeProcessor(
                engine, executor, settings, parser=parser, on_stored=lambda _: wake_outbox()
            )
            await processor.recover()
            processor.start()
            stoppers.insert(0, processor.stop)  # first: turn what is captured into tickets
            wake_intake = processor.wake

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
        loop.add_reader(wake_fd, on_wake)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        sys.stdout.buffer.write(READY)
        sys.stdout.buffer.flush()
        await stop.wait()
        log.info("back_office_stopping", role=role)
    finally:
        for stopper in stoppers:
            await stopper()
        executor.shutdown(wait=True)
        engine.dispose()


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


def _closing(parser: ParsePool) -> Callable[[], Awaitable[None]]:
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
    asyncio.run(run_back_office(settings, role, int(wake_fd)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
