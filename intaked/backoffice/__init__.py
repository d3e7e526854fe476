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
next start take over. "ready" on stdout tells the parent that start-up is done; after it, a byte
every ``daemon.heartbeat_seconds`` tells it that the process's event loop runs: ``.`` when its own
children are well too, ``?`` when one of them has been silent for ``daemon.lease_seconds``. The
parent takes a ready child silent for a lease, or saying ``?``, for stuck (:meth:`trouble`): the
front withholds systemd's watchdog pings then (intaked/notify.py tells why a pipe).

This package is imported by the front for :class:`BackOfficeProcess` (here); the roles' workers
(parsing, SLA, routing, the Twilio client) are imported only in the process that runs them
(``roles.py``, through ``__main__.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import IO

import structlog

from intaked.config import Settings

log = structlog.get_logger(__name__)

READY = b"ready\n"
TICK_WELL = b"."  # after "ready", every heartbeat: my loop runs, and my children are well
TICK_CHILD_SILENT = b"?"  # my loop runs, but a child of mine is silent
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

    def __init__(
        self, settings: Settings, role: str = ROLE_INTAKE, environment: dict[str, str] | None = None
    ) -> None:
        self._settings = settings
        self.role = role
        self._environment = environment  # added to ours for the process (None: ours as it is)
        self._proc: subprocess.Popen[bytes] | None = None
        self._wake_fd: int | None = None
        self._stopping = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._last_tick: float | None = None  # monotonic; None unless the process is ready
        self._children_well = True

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
                env={**os.environ, **self._environment} if self._environment else None,
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

    def trouble(self) -> str | None:
        """Why this process is not making progress (a ready process silent for a lease, or one
        that says a child of its own is silent), or None. A process starting, or dead and about to
        be restarted, is the supervisor's business: None."""
        last = self._last_tick
        if last is None:
            return None
        silent = time.monotonic() - last
        if silent > self._settings.daemon.lease_seconds:
            return f"back office {self.role} (pid {self.pid}) silent for {silent:.0f}s"
        if not self._children_well:
            return f"a child of back office {self.role} (pid {self.pid}) is silent"
        return None

    def _listen(self, stdout: IO[bytes]) -> None:
        """Read the ready process's heartbeat bytes on the event loop, until end of file."""
        loop = asyncio.get_running_loop()
        fd = stdout.fileno()
        os.set_blocking(fd, False)
        self._last_tick, self._children_well = time.monotonic(), True

        def on_tick() -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # it exited (or closed its stdout): its supervisor takes over
                loop.remove_reader(fd)
                self._last_tick = None
                return
            self._last_tick = time.monotonic()
            self._children_well = data[-1:] != TICK_CHILD_SILENT

        loop.add_reader(fd, on_tick)

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
            self._listen(stdout)
        try:
            code = await loop.run_in_executor(None, proc.wait)
        finally:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(stdout.fileno())
            self._last_tick = None
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
