"""systemd's notify protocol (``Type=notify``): readiness, a STATUS line, and the watchdog.

The front process tells systemd ``READY=1`` once its listeners are up, ``STOPPING=1`` when
SIGTERM starts the drain, and, every ``STATUS_SECONDS``, a ``STATUS=`` line an operator reads in
``systemctl status`` ("52 items queued, 0 quarantined, 3 outbox pending, IMAP ok"). The figures
are read on the daemon's database threads; a store that cannot be read gives a STATUS saying so.

With ``WatchdogSec=`` systemd sets ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, our pid), and kills
and restarts the service when no ``WATCHDOG=1`` arrives within that time. The front sends one
every half interval from its event loop (so a blocked loop stops them), and only while every
process of the daemon is alive and making progress: a check given by the daemon answers why
not, or None.

How the front knows that its children make progress: each back office process writes a byte to
its parent through the pipe that already carries its "ready" line (its stdout), every
``daemon.heartbeat_seconds``, from its event loop: ``.`` when it and its own children are well,
``?`` when one of its children has gone silent (the intake process relays so for the outbox
sender, its child). A parent takes a ready child that sent nothing for ``daemon.lease_seconds``,
or whose last byte was ``?``, for stuck (intaked/backoffice/__init__.py). A pipe rather than the
heartbeats of the ``workers`` table: those pause during a database outage, which the daemon is
built to ride out, and a restart by systemd would not help then; a pipe needs no store and the
parent learns of a stopped child (SIGSTOP, a hang) within a lease. A child that died, or is
starting, is its supervisor's business (it restarts it, with a pause), not the watchdog's.
With ``daemon.back_office = "inline"`` the pings depend on the loop and on the in-process
workers' loops still running.

This module imports nothing of intaked: the daemon hands it the status and the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

STATUS_SECONDS = 5.0


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("sd_notify_failed", error=str(exc))


def watchdog_seconds() -> float | None:
    """The watchdog interval systemd asks of this process (``WATCHDOG_USEC``), or None when
    there is none or it is meant for another process (``WATCHDOG_PID``)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        return None
    return seconds if seconds > 0 else None


class Notifier:
    """The front's STATUS and WATCHDOG tasks, on its event loop, until :meth:`stop`.

    ``status()`` returns the STATUS line (awaited; it reads the store off the loop); ``trouble()``
    returns why the daemon is not well (a ping is withheld), or None."""

    def __init__(
        self,
        status: Callable[[], Awaitable[str]],
        trouble: Callable[[], str | None],
        *,
        status_seconds: float = STATUS_SECONDS,
    ) -> None:
        self._status = status
        self._trouble = trouble
        self._status_seconds = status_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._withheld: str | None = None

    def start(self) -> None:
        if not os.environ.get("NOTIFY_SOCKET"):
            return  # not under systemd: nobody to tell, so nothing is read for it
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._report_status(), name="sd-notify-status"))
        interval = watchdog_seconds()
        if interval is not None:
            log.info("watchdog_enabled", seconds=interval)
            self._tasks.append(loop.create_task(self._ping(interval / 2), name="sd-notify-watchdog"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _report_status(self) -> None:
        last = ""
        while True:
            try:
                line = await self._status()
            except Exception as exc:  # never the end of the daemon: say so instead
                line = f"status unknown: {type(exc).__name__}"
            if line != last:
                sd_notify(f"STATUS={line}")
                last = line
            await asyncio.sleep(self._status_seconds)

    async def _ping(self, every: float) -> None:
        while True:
            self.ping_once()
            await asyncio.sleep(every)

    def ping_once(self) -> bool:
        """Send WATCHDOG=1 if the daemon is well; log when the pings stop and start again."""
        trouble = self._trouble()
        if trouble is None:
            if self._withheld is not None:
                log.info("watchdog_resumed", after=self._withheld)
                self._withheld = None
            sd_notify("WATCHDOG=1")
            return True
        if trouble != self._withheld:
            log.error("watchdog_withheld", reason=trouble)
            self._withheld = trouble
        return False
