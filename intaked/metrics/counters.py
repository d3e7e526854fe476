"""Counters only the front process sees, kept in its memory (they start from 0 at each start,
as Prometheus counters may): 451 replies to the SMTP/LMTP peer and database errors met by the
front; and the front process's own figures (``process_*``: CPU, memory, open descriptors, start
time, so a restart by systemd's watchdog shows). They live in :data:`FRONT_REGISTRY`, which the
metrics listener serves beside the figures read from the store. This module imports nothing of
intaked, so any layer may count here."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, ProcessCollector

FRONT_REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=FRONT_REGISTRY)

DEFERRED_REPLIES = Counter(
    "intaked_smtp_deferred_replies",
    "Messages answered 451 (the store could not take them; the sender retries)",
    registry=FRONT_REGISTRY,
)
DATABASE_ERRORS = Counter(
    "intaked_front_database_errors",
    "Database errors met by the front process, by where they happened",
    ["source"],
    registry=FRONT_REGISTRY,
)
for _source in ("capture", "metrics", "readiness"):
    DATABASE_ERRORS.labels(source=_source)  # each series exists from the start, at 0
