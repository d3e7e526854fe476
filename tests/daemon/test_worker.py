"""The wake/poll loop shared by the intake processor and the outbox dispatcher."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from intaked.worker import WakeableWorker


def test_runs_when_woken_repeats_while_busy_survives_failures_and_drains_on_stop() -> None:
    queue = [3, 0]  # work items per pass; 0 means idle
    calls: list[str] = []

    def work() -> int:
        if queue and queue[0] == "boom":
            queue.pop(0)
            calls.append("failed")
            raise RuntimeError("store down (injected)")
        done = queue.pop(0) if queue else 0
        calls.append(f"did {done}")
        return int(done)

    async def scenario() -> None:
        with ThreadPoolExecutor(2) as pool:
            worker = WakeableWorker("test", pool, work, poll_seconds=30, drain_on_stop=True)
            worker.start()
            await asyncio.sleep(0.1)
            assert calls == ["did 3", "did 0"], "a busy pass is followed by another at once, then it waits"
            queue.extend(["boom", 2, 0])
            worker.wake()
            await asyncio.sleep(1.3)
            assert calls[2:] == ["failed", "did 2", "did 0"], "a failure pauses and retries, not stops"
            queue.extend([1, 0])
            await worker.stop()
            assert calls[-2:] == ["did 1", "did 0"], "drain_on_stop: the work found at stop is done"

    asyncio.run(scenario())
