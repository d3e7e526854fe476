"""The timers: APScheduler jobs only wake the workers, on the event loop's own thread (no hop
through a thread pool), and stopping the scheduler leaves no job behind to fail."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from intaked.scheduler import Scheduler
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from tests.support.daemon import make_settings


def test_timers_wake_the_workers_on_the_loop_and_stop_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'intaked.db'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = make_settings(url, sla={"check_seconds": 0.02}, lifecycle={"sweep_interval": "1s"})
    executor = ThreadPoolExecutor(max_workers=2)
    woken_on: list[int] = []

    async def run() -> int:
        scheduler = Scheduler(engine, executor, settings, on_queued=lambda: None)
        wake = scheduler.sla.wake

        def recording_wake() -> None:
            woken_on.append(threading.get_ident())
            wake()

        scheduler.sla.wake = recording_wake  # type: ignore[method-assign]
        scheduler.start()
        await asyncio.sleep(0.5)
        await scheduler.stop()
        return threading.get_ident()

    caplog.set_level(logging.INFO, logger="apscheduler")
    try:
        loop_thread = asyncio.run(run())
    finally:
        executor.shutdown(wait=True)
        engine.dispose()
    assert len(woken_on) >= 5, "the SLA timer fired every 0.02 s"
    assert set(woken_on) == {loop_thread}, "every wake-up ran on the event loop's thread"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
