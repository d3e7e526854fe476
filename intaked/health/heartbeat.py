"""The heartbeat URL (``health.heartbeat_url``): a dead-man's switch such as healthchecks.io or an
Uptime Kuma push monitor, which alarms when the pings stop, so that a dead host, a dead daemon or
a daemon that is up but not ready is noticed too.

Every ``health.heartbeat_seconds`` the front runs the readiness checks (those of ``/readyz``,
intaked/metrics/readiness.py) and GETs the URL only when they all passed. A failed ping is logged
(the first at once, then one line every ``FAILURE_LOG_SECONDS`` with a count, and once when pings
go through again), never fatal. Pausing and resuming are logged once each.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.metrics.readiness import check_readiness
from intaked.store.liveness import node_name

log = structlog.get_logger(__name__)

FAILURE_LOG_SECONDS = 600.0
TIMEOUT_SECONDS = 10.0


class HeartbeatPinger:
    """GETs the heartbeat URL while ready (blocking: run :meth:`ping_once` on a database thread)."""

    def __init__(
        self, settings: Settings, engine: Engine, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._url = settings.health.heartbeat_url
        self._clock = clock
        self._pinging = False  # the last look found it ready
        self._started = False  # it has been ready once
        self._failures = 0
        self._last_logged = 0.0

    def ping_once(self) -> int:
        """One readiness check, and the ping if ready; always 0."""
        readiness = check_readiness(self._settings, self._engine, node_name())
        if not readiness.ready:
            if self._pinging:
                log.warning("heartbeat_paused", failed=readiness.failed())
            self._pinging = False
            return 0
        if not self._pinging:
            log.info("heartbeat_resumed" if self._started else "heartbeat_started", url=self._url)
        self._pinging = self._started = True
        try:
            with urllib.request.urlopen(self._url, timeout=TIMEOUT_SECONDS) as response:
                response.read(4096)
        except Exception as exc:  # unreachable, an HTTP error: the dead-man's switch will tell
            self._failed(exc)
        else:
            self._succeeded()
        return 0

    def _failed(self, exc: Exception) -> None:
        now = self._clock()
        self._failures += 1
        if self._failures == 1 or now - self._last_logged >= FAILURE_LOG_SECONDS:
            self._last_logged = now
            log.warning("heartbeat_failed", url=self._url, error=str(exc), failures=self._failures)

    def _succeeded(self) -> None:
        if self._failures:
            log.info("heartbeat_recovered", url=self._url, failures=self._failures)
        self._failures = 0
