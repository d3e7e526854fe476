"""The heartbeat URL of a real daemon (SQLite and the real PostgreSQL server): a local HTTP server
stands in for the dead-man's switch; it receives pings at the interval while the daemon is ready,
none while it is not (the schema set back, as /readyz would report), and pings again once ready."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from intaked.store.migrate import head_revision
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

INTERVAL = 0.2


class PingServer:
    """Counts the GETs of the heartbeat path."""

    def __init__(self) -> None:
        self.pings: list[str] = []
        pings = self.pings

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pings.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ping/intaked-test"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pings() -> Iterator[PingServer]:
    server = PingServer()
    yield server
    server.stop()


@pytest.fixture
def daemon(db_url: str, pings: PingServer) -> Iterator[DaemonThread]:
    settings = make_settings(
        db_url,
        daemon={"heartbeat_seconds": 0.5, "lease_seconds": 60},
        health={"heartbeat_url": pings.url, "heartbeat_seconds": INTERVAL},
    )
    thread = DaemonThread(settings).start()
    yield thread
    thread.stop()


def set_schema(daemon: DaemonThread, revision: str) -> None:
    with daemon.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{revision}'")


def test_pings_only_while_ready(daemon: DaemonThread, pings: PingServer) -> None:
    wait_until(lambda: len(pings.pings) >= 1, timeout=30, what="the first ping (the back office up)")
    started, first = time.monotonic(), len(pings.pings)
    wait_until(lambda: len(pings.pings) >= first + 5, timeout=10, what="pings at the interval")
    elapsed = time.monotonic() - started
    assert elapsed >= 4 * INTERVAL, f"5 pings in {elapsed:.2f}s: faster than the interval"
    assert set(pings.pings) == {"/ping/intaked-test"}

    set_schema(daemon, "0001")  # /readyz would say 503 (schema)
    time.sleep(3 * INTERVAL)  # a ping already on its way may still land
    paused = len(pings.pings)
    time.sleep(10 * INTERVAL)
    assert len(pings.pings) == paused, "no pings while not ready"

    set_schema(daemon, head_revision())
    wait_until(lambda: len(pings.pings) >= paused + 2, timeout=10, what="pings again once ready")
