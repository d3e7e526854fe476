"""intaked's webhook listener, run for a test on its own event loop thread (a real HTTP server)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from intaked.config import Settings
from intaked.twilio.server import WebhookRoutes, WebhookServer


@dataclass(frozen=True)
class RunningWebhooks:
    """``base_url`` is the socket's URL (``http://127.0.0.1:PORT``); Twilio is told ``public_url``."""

    base_url: str
    public_url: str


@contextmanager
def running_webhooks(settings: Settings, engine: Engine, routes: WebhookRoutes) -> Iterator[RunningWebhooks]:
    """Serve ``routes`` on ``settings.webhooks.listen`` (port 0: a free one) until the block ends."""
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="test-webhooks-db")
    server = WebhookServer(settings, engine, executor, routes)
    thread = threading.Thread(target=loop.run_forever, name="test-webhooks", daemon=True)
    thread.start()
    try:
        host, port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        yield RunningWebhooks(f"http://{host}:{port}", settings.webhooks.public_url)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        executor.shutdown(wait=True)
