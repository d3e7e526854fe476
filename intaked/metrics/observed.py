"""What the back office observes as it works and the store does not keep: how long an
acknowledgement took from our 250 (or the IMAP capture) to the relay's acceptance, how long a QRC
page took from its start to Twilio's acceptance of its first SMS and first call, how many
filed messages had parse problems, and how many passes of a worker failed (the store out, mostly).

The back office runs in processes of its own (intaked/backoffice/), so these are kept with
prometheus_client's multiprocess mode: the front gives its back office processes a directory of
their own (``PROMETHEUS_MULTIPROC_DIR``, a fresh one at each start, removed at stop), where each
process keeps its values in memory-mapped files; the metrics listener adds them up at each scrape
(:class:`ObservedCollector`). Where the back office runs inline in the front
(``daemon.back_office = "inline"``), the values stay in this process's memory and the listener
serves :data:`OBSERVED_REGISTRY` instead. This module imports nothing of intaked, so any layer
may observe here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

OBSERVED_REGISTRY = CollectorRegistry(auto_describe=True)

ACK_LATENCY = Histogram(
    "intaked_ack_latency_seconds",
    "From a mail's capture (SMTP 250, or IMAP) to the relay accepting its acknowledgement",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
    registry=OBSERVED_REGISTRY,
)
PAGE_LATENCY = Histogram(
    "intaked_page_latency_seconds",
    "From a QRC page's start to Twilio accepting its first SMS or first call",
    ["channel"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
    registry=OBSERVED_REGISTRY,
)
PARSE_PROBLEMS = Counter(
    "intaked_parse_problems",
    "Messages filed with at least one parse problem (the ticket's parse_problems event says which)",
    registry=OBSERVED_REGISTRY,
)

FAILED_PASSES = Counter(
    "intaked_worker_failed_passes",
    "Passes of a back office worker that failed (mostly: the store could not be reached), by worker",
    ["worker"],
    registry=OBSERVED_REGISTRY,
)

OBSERVED_NAMES = frozenset(
    {
        "intaked_ack_latency_seconds",
        "intaked_page_latency_seconds",
        "intaked_parse_problems",
        "intaked_worker_failed_passes",
    }
)


def count_failed_pass(worker: str) -> None:
    """What a process that serves these tells :class:`intaked.worker.WakeableWorker` to do."""
    FAILED_PASSES.labels(worker=worker).inc()


def seconds_since(then: dt.datetime, now: dt.datetime) -> float:
    """``now - then`` in seconds, never negative (clocks of two nodes may differ a little); a
    naive ``then`` (SQLite) is taken as UTC."""
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return max(0.0, (now - then).total_seconds())


class ObservedCollector(Collector):
    """The back office processes' values, added up from their files in ``directory``; only the
    families of this module (a process's other metrics, counted in memory by the front, are
    left out so that no family is served twice)."""

    def __init__(self, directory: str) -> None:
        self._files = MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        families: Iterator[Metric] = self._files.collect()  # type: ignore[no-untyped-call]
        for family in families:
            if family.name in OBSERVED_NAMES:
                yield family
