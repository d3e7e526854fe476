"""The metrics listener (``[metrics] listen``, default ``127.0.0.1:9464``, off when empty): a
small ``aiohttp`` app of its own on the front process's event loop.

- ``GET /metrics``: Prometheus text format: the front's own counters
  (intaked/metrics/counters.py), the store's figures (intaked/metrics/collector.py) and what the
  back office observed (intaked/metrics/observed.py);
- ``GET /healthz``: 200 ``ok`` (the process answers);
- ``GET /readyz``: 200 when every readiness check passed, else 503; a JSON body names each check
  and whether it passed (intaked/metrics/readiness.py).

The database work of a scrape or a readiness check runs on the executor it is given (the daemon's
database threads), never on the loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import Executor
from http import HTTPStatus

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.metrics.collector import ReadinessCollector, StoreCollector, WatchdogCollector
from intaked.metrics.counters import DATABASE_ERRORS, FRONT_REGISTRY
from intaked.metrics.observed import OBSERVED_REGISTRY, ObservedCollector
from intaked.metrics.readiness import Readiness, check_readiness
from intaked.store.liveness import node_name

log = structlog.get_logger(__name__)

SHUTDOWN_TIMEOUT_SECONDS = 2.0


class MetricsServer:
    """The listener; ``start()`` returns the bound (host, port), ``stop()`` closes it.
    ``observed_dir``: the back office processes' multiprocess directory; None when the back
    office runs inline, in this process. ``trouble``: why a process of the daemon is not well
    (the watchdog's check), or None."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        executor: Executor,
        observed_dir: str | None = None,
        trouble: Callable[[], str | None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._executor = executor
        self._store = CollectorRegistry(auto_describe=False)
        self._store.register(StoreCollector(engine))
        self._store.register(ReadinessCollector(self.readiness))
        self._store.register(WatchdogCollector(trouble))
        self._observed = OBSERVED_REGISTRY
        if observed_dir is not None:
            self._observed = CollectorRegistry(auto_describe=False)
            self._observed.register(ObservedCollector(observed_dir))
        self._runner: web.AppRunner | None = None

    async def start(self) -> tuple[str, int]:
        host, port = self._settings.metrics.host_port
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        bound = self._runner.addresses[0]
        address = (str(bound[0]), int(bound[1]))
        log.info("metrics_listening", host=address[0], port=address[1])
        return address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def exposition(self) -> bytes:
        """The text of a scrape (blocking: it reads the store)."""
        return (
            generate_latest(FRONT_REGISTRY) + generate_latest(self._observed) + generate_latest(self._store)
        )

    def readiness(self) -> Readiness:
        """The readiness checks (blocking: they read the store)."""
        result = check_readiness(self._settings, self._engine, node_name())
        if not result.checks[0].passed:
            DATABASE_ERRORS.labels(source="readiness").inc()
        return result

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(self._executor, self.exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        result = await asyncio.get_running_loop().run_in_executor(self._executor, self.readiness)
        status = HTTPStatus.OK if result.ready else HTTPStatus.SERVICE_UNAVAILABLE
        return web.Response(
            status=status, text=json.dumps(result.as_json(), indent=2) + "\n", content_type="application/json"
        )
