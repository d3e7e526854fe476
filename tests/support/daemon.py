"""The daemon in a background thread, with its own event loop, for tests that talk to it over sockets."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Engine, func, select

from intaked.config import Settings, settings_from_mapping
from intaked.daemon import Daemon
from intaked.store.models import InboundItem, Ticket


def make_settings(database_url: str, **sections: Any) -> Settings:
    """Settings for a test: the given database, SMTP on an ephemeral loopback port."""
    data: dict[str, Any] = {
        "database": {"url": database_url, "sqlite_busy_timeout_ms": 300},
        "smtp_intake": {"listen": "127.0.0.1:0"},
        "intake": {"retry_base_seconds": 0.2},
        "logging": {"level": "warning", "format": "json"},
        "metrics": {"listen": ""},  # a test that wants the listener gives it a port
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values
    return settings_from_mapping(data, source="test", environ={})


class DaemonThread:
    """Start/stop a :class:`Daemon` on a private loop in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.daemon = Daemon(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="daemon-loop", daemon=True)

    def _call(self, coro: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def start(self) -> DaemonThread:
        self._thread.start()
        self._call(self.daemon.start())
        return self

    def stop(self) -> None:
        self._call(self.daemon.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def smtp_port(self) -> int:
        assert self.daemon.smtp_address is not None
        return self.daemon.smtp_address[1]

    @property
    def engine(self) -> Engine:
        assert self.daemon.engine is not None
        return self.daemon.engine

    def ticket_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Ticket.__table__)).scalar_one())

    def pending_items(self) -> int:
        items = InboundItem.__table__
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(items)
                    .where(items.c.state.in_(["received", "processing"]))
                ).scalar_one()
            )
