"""A loop that runs blocking work on the daemon's database threads whenever there may be some.

Woken by whoever produced work (``wake()``), and every ``poll_seconds`` anyway (for work left by
other processes, due retries, and housekeeping such as releasing stale claims). A pass that did
something is followed by another at once; a failed pass (the store is down) is retried after a
pause. ``stop()`` lets the current pass finish, and with ``drain_on_stop`` every pass that still
finds work, before it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

import structlog

log = structlog.get_logger(__name__)

FAILURE_PAUSE_SECONDS = 1.0


class WakeableWorker:
    """Runs ``work`` (blocking; returns how much it did) in ``executor`` on demand, in ``loops`` loops."""

    def __init__(
        self,
        name: str,
        executor: Executor,
        work: Callable[[], int],
        *,
        poll_seconds: float,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_seconds: float = 300.0,
        loops: int = 1,
        drain_on_stop: bool = False,
    ) -> None:
        self.name = name
        self._executor = executor
        self._work = work
        self._poll_seconds = poll_seconds
        self._housekeeping = housekeeping
        self._housekeeping_seconds = housekeeping_seconds
        self._loops = loops
        self._drain_on_stop = drain_on_stop
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

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

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        idle_for = 0.0
        while True:
            if self._stopping and not self._drain_on_stop:
                return
            try:
                done = await loop.run_in_executor(self._executor, self._work)
            except Exception as exc:  # the store is down: keep the daemon up, try again soon
                log.error(f"{self.name}_pass_failed", error=str(exc))
                if self._stopping:
                    return
                await asyncio.sleep(FAILURE_PAUSE_SECONDS)
                continue
            if done:
                continue
            if self._stopping:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            except TimeoutError:
                idle_for += self._poll_seconds
                if self._housekeeping is not None and idle_for >= self._housekeeping_seconds:
                    idle_for = 0.0
                    try:
                        await loop.run_in_executor(self._executor, self._housekeeping)
                    except Exception as exc:
                        log.error(f"{self.name}_housekeeping_failed", error=str(exc))
