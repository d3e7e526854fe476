"""A loop that runs blocking work on the daemon's database threads whenever there may be some.

Woken by whoever produced work (``wake()``), and every ``poll_seconds`` anyway (for work left by
other processes and due retries). A pass that did something is followed by another at once; a
failed pass (the store is down) is retried after a pause, and before any new work the worker
writes the outcomes the store could not take (intaked/store/settle.py). Repeated failures are
logged once, then once every ``FAILURE_LOG_SECONDS`` with a count, and once more when the store
is back. ``stop()`` lets the current pass finish, and with ``drain_on_stop`` every pass that still
finds work, before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import ClassVar

import structlog

from intaked.store.settle import Unsettled, describe_error

log = structlog.get_logger(__name__)

FAILURE_PAUSE_SECONDS = 1.0
FAILURE_LOG_SECONDS = 30.0
STOP_SETTLE_TRIES = 3


def _not_counted(worker: str) -> None:
    """No one counts failed passes (a test, a command)."""


class WakeableWorker:
    """Runs ``work`` (blocking; returns how much it did) in ``executor`` on demand, in ``loops``
    loops; without ``work``, a subclass's :meth:`_pass`.

    :attr:`count_failed_pass` is told the worker's name at each pass that failed; a process that
    serves metrics sets it once at its start (this layer imports no metrics)."""

    count_failed_pass: ClassVar[Callable[[str], None]] = staticmethod(_not_counted)

    def __init__(
        self,
        name: str,
        executor: Executor,
        work: Callable[[], int] | None = None,
        *,
        poll_seconds: float,
        loops: int = 1,
        drain_on_stop: bool = False,
        unsettled: Unsettled | None = None,
    ) -> None:
        self.name = name
        self._executor = executor
        self._work = self._pass if work is None else work
        self._poll_seconds = poll_seconds
        self.unsettled = Unsettled(name) if unsettled is None else unsettled
        self._loops = loops
        self._drain_on_stop = drain_on_stop
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def _pass(self) -> int:
        """One pass of a subclass's work (blocking): how much it did."""
        raise NotImplementedError

    def pass_once(self) -> int:
        """One pass now, on the calling thread (blocking), as a loop would run it: how much it did."""
        return self._settle_then_work()

    def wake(self) -> None:
        """Safe from any thread: a database thread (a pass that queued work for another worker)
        hands the wake-up to the worker's event loop."""
        loop = self._loop
        if loop is None:
            self._wake.set()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def run_blocking(self, function: Callable[[], int]) -> int:
        """Run ``function`` on this worker's database threads (start-up chores such as recovery)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name=f"{self.name}-{n}") for n in range(self._loops)]

    def stalled(self) -> bool:
        """Whether a loop of this worker has ended though it was not asked to stop (it would make
        no more passes; the watchdog stops then: intaked/notify.py)."""
        return not self._stopping and any(task.done() for task in self._tasks)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []
        for _ in range(STOP_SETTLE_TRIES):
            if not len(self.unsettled):
                return
            try:
                await self.run_blocking(self.unsettled.settle)
            except Exception as exc:
                log.warning(f"{self.name}_settle_failed", error=describe_error(exc), held=len(self.unsettled))
                await asyncio.sleep(FAILURE_PAUSE_SECONDS)
        if len(self.unsettled):
            # Claims stay with this worker's id: the next start takes them up (at least once).
            log.error(f"{self.name}_stopped_with_outcomes_unrecorded", held=len(self.unsettled))

    def _settle_then_work(self) -> int:
        if len(self.unsettled):
            self.unsettled.settle()
        return self._work()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        failures = 0
        last_logged = 0.0
        while True:
            if self._stopping and not self._drain_on_stop:
                return
            try:
                done = await loop.run_in_executor(self._executor, self._settle_then_work)
            except Exception as exc:  # the store is down: keep the daemon up, try again soon
                now = time.monotonic()
                failures += 1
                WakeableWorker.count_failed_pass(self.name)
                if failing_since is None:
                    failing_since = last_logged = now
                    log.error(f"{self.name}_pass_failed", error=describe_error(exc))
                elif now - last_logged >= FAILURE_LOG_SECONDS:
                    last_logged = now
                    log.error(
                        f"{self.name}_pass_still_failing",
                        error=describe_error(exc),
                        failures=failures,
                        for_seconds=round(now - failing_since),
                    )
                if self._stopping:
                    return
                await asyncio.sleep(FAILURE_PAUSE_SECONDS)
                continue
            if failing_since is not None:
                log.info(
                    f"{self.name}_pass_recovered",
                    failures=failures,
                    after_seconds=round(time.monotonic() - failing_since, 1),
                )
                failing_since, failures = None, 0
            if done:
                continue
            if self._stopping:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
