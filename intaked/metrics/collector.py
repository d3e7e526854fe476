"""The Prometheus collector of the figures every process leaves in the store
(intaked/metrics/figures.py), read at each scrape. Names follow Prometheus conventions:
``intaked_`` prefix, ``_total`` for counters, ``_seconds`` for ages. When the store cannot be
read, the scrape still answers: ``intaked_store_up`` is 0 and the figures are left out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from intaked.metrics.counters import DATABASE_ERRORS
from intaked.metrics.figures import Counts, StoreFigures, read_figures
from intaked.metrics.readiness import Readiness
from intaked.store.settle import describe_error

log = structlog.get_logger(__name__)


class StoreCollector(Collector):
    """Yields the store's figures as metric families (blocking: collect off the event loop)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            figures = read_figures(self._engine)
        except Exception as exc:
            DATABASE_ERRORS.labels(source="metrics").inc()
            log.warning("metrics_store_unreadable", error=describe_error(exc))
            yield _gauge("intaked_store_up", "1 when the store answered this scrape's queries", 0)
            return
        yield _gauge("intaked_store_up", "1 when the store answered this scrape's queries", 1)
        yield from figure_families(figures)


class ReadinessCollector(Collector):
    """Yields the readiness checks of ``/readyz`` as gauges, so an alert rule can watch them."""

    def __init__(self, check: Callable[[], Readiness]) -> None:
        self._check = check

    def collect(self) -> Iterator[Metric]:
        result = self._check()
        yield _gauge(
            "intaked_ready", "1 when every readiness check of /readyz passed", 1 if result.ready else 0
        )
        checks = GaugeMetricFamily(
            "intaked_readiness_check", "1 when the readiness check passed", labels=["check"]
        )
        for check in result.checks:
            checks.add_metric([check.name], 1 if check.passed else 0)
        yield checks


class WatchdogCollector(Collector):
    """Yields whether every process of the daemon is alive and making progress: the condition
    on which the front pings systemd's watchdog (intaked/notify.py), whether or not it runs
    under systemd. ``trouble()`` answers why not, or None."""

    def __init__(self, trouble: Callable[[], str | None]) -> None:
        self._trouble = trouble

    def collect(self) -> Iterator[Metric]:
        yield _gauge(
            "intaked_processes_well",
            "1 while every process of the daemon is alive and making progress (systemd's watchdog)",
            0 if self._trouble() else 1,
        )


def figure_families(f: StoreFigures) -> Iterator[Metric]:
    """Every metric family of one reading of the store."""
    yield _labelled(
        GaugeMetricFamily, "intaked_inbound_items", "Ledger items", ["channel", "state"], f.inbound_items
    )
    yield _gauge("intaked_ledger_backlog_items", "Ledger items not yet turned into tickets", f.ledger_backlog)
    yield _gauge(
        "intaked_ledger_oldest_age_seconds",
        "Age of the oldest unfinished ledger item (0: none)",
        f.ledger_oldest_age,
    )
    yield _gauge(
        "intaked_ledger_quarantined_items", "Ledger items quarantined (parsing gave up)", f.quarantined
    )
    yield _labelled(GaugeMetricFamily, "intaked_tickets", "Tickets", ["status"], f.tickets)
    yield _labelled(GaugeMetricFamily, "intaked_outbox_rows", "Outbox rows", ["kind", "state"], f.outbox_rows)
    yield _gauge(
        "intaked_outbox_oldest_pending_age_seconds",
        "Age of the oldest outbox row not yet sent (pending or sending; 0: none)",
        f.outbox_oldest_age,
    )
    yield _labelled(GaugeMetricFamily, "intaked_pages", "QRC pages", ["state"], f.pages)
    yield _labelled(GaugeMetricFamily, "intaked_hotline_calls", "Hotline calls", ["outcome"], f.calls)
    yield _labelled(
        CounterMetricFamily,
        "intaked_sla_warnings",
        "Tickets warned of an SLA target",
        ["target"],
        f.sla_warnings,
    )
    yield _labelled(
        CounterMetricFamily,
        "intaked_sla_breaches",
        "Tickets that breached an SLA target",
        ["target"],
        f.sla_breaches,
    )
    yield from _mailbox_families(f)
    yield from _worker_families(f)


def _mailbox_families(f: StoreFigures) -> Iterable[Metric]:
    polled = GaugeMetricFamily(
        "intaked_imap_last_poll_age_seconds",
        "Seconds since the mailbox's last successful poll",
        labels=["mailbox"],
    )
    failing = GaugeMetricFamily(
        "intaked_imap_mailbox_failing", "1 when the mailbox's last pass failed", labels=["mailbox"]
    )
    for mailbox in f.mailboxes:
        if mailbox.poll_age_seconds is not None:
            polled.add_metric([mailbox.name], mailbox.poll_age_seconds)
        failing.add_metric([mailbox.name], 1 if mailbox.last_error else 0)
    return (polled, failing)


def _worker_families(f: StoreFigures) -> Iterable[Metric]:
    age = GaugeMetricFamily(
        "intaked_worker_heartbeat_age_seconds",
        "Seconds since each live worker's last heartbeat",
        labels=["node", "role", "worker"],
    )
    lease = GaugeMetricFamily(
        "intaked_worker_lease_seconds", "Each live worker's lease", labels=["node", "role", "worker"]
    )
    for worker in f.workers:
        age.add_metric([worker.node, worker.role, worker.id], worker.age_seconds)
        lease.add_metric([worker.node, worker.role, worker.id], worker.lease_seconds)
    return (age, lease)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    documentation: str,
    labels: list[str],
    counts: Counts,
) -> Metric:
    family = kind(name, documentation, labels=labels)
    for key, count in sorted(counts.items()):
        family.add_metric(list(key), count)
    return family
