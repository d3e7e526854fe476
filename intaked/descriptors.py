"""The front process's file descriptors: the limit raised at start, the listeners' caps checked
against it.

Every connection a listener holds is a descriptor, and so is every database connection (three
for SQLite: the file, its WAL and its shared memory), IMAP mailbox, pipe to a child process and
log file. When the process runs out, ``accept()`` fails on every listener at once and nobody is
answered; so the caps (``webhooks.max_connections``, ``smtp_intake.max_sessions``) must fit below
the soft ``RLIMIT_NOFILE`` with a reserve for the rest. At start the soft limit is raised to the
hard one (systemd's ``LimitNOFILE=`` sets both; its default soft limit is 1024) and a warning
names the keys when the caps do not fit; the daemon still starts, and what happens when
descriptors run out is intaked/loop_errors.py's to handle.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from typing import Final

import structlog

from intaked.config import Settings

log = structlog.get_logger(__name__)

#: Descriptors kept for everything but the listeners' connections: pipes to the back office and
#: its parse workers, log and library files, the signal and notify sockets, the spare of
#: intaked/loop_errors.py, and the accept bursts above the caps (closed a moment later).
BASE_RESERVE: Final = 128
#: Per database connection (SQLite holds the file, -wal and -shm).
DESCRIPTORS_PER_DB_CONNECTION: Final = 3
#: SQLAlchemy's pool: pool_size connections, as many again in overflow, and the migration's.
DB_CONNECTIONS_PER_POOL_SLOT: Final = 2
DB_CONNECTIONS_BESIDE_POOL: Final = 5
#: Per IMAP mailbox: its connection, and the next one while it reconnects.
DESCRIPTORS_PER_MAILBOX: Final = 2
#: Where the soft limit goes when the hard limit is unlimited (Linux's default fs.nr_open).
UNLIMITED_TARGET: Final = 1 << 20


@dataclass(frozen=True)
class DescriptorBudget:
    """What the configuration may hold open: each listener's cap by its key, and the reserve."""

    caps: dict[str, int]
    reserve: int

    @property
    def needed(self) -> int:
        return sum(self.caps.values()) + self.reserve

    def log_fields(self) -> dict[str, object]:
        """The budget as the ``descriptor_limit`` line logs it (docs/operations.md)."""
        return {"needed": self.needed, "caps": self.caps, "reserve": self.reserve}


def descriptor_budget(settings: Settings) -> DescriptorBudget:
    """The caps of the listeners this configuration opens, and the reserve for the rest."""
    caps: dict[str, int] = {}
    if settings.smtp_intake.enabled:
        caps["smtp_intake.max_sessions"] = settings.smtp_intake.max_sessions
    if settings.twilio.enabled and settings.webhooks.listen:
        caps["webhooks.max_connections"] = settings.webhooks.max_connections
    db_connections = DB_CONNECTIONS_PER_POOL_SLOT * settings.database.pool_size + DB_CONNECTIONS_BESIDE_POOL
    mailboxes = sum(1 for mailbox in settings.imap if mailbox.enabled)
    reserve = (
        BASE_RESERVE + DESCRIPTORS_PER_DB_CONNECTION * db_connections + DESCRIPTORS_PER_MAILBOX * mailboxes
    )
    return DescriptorBudget(caps, reserve)


def budget_shortfall(budget: DescriptorBudget, soft_limit: int) -> str | None:
    """Why the caps do not fit below ``soft_limit``, naming the keys; None when they fit."""
    if soft_limit == resource.RLIM_INFINITY or budget.needed <= soft_limit:
        return None
    caps = " + ".join(f"{key} ({cap})" for key, cap in budget.caps.items()) or "no listener"
    return (
        f"{caps} + {budget.reserve} reserved need {budget.needed} file descriptors, "
        f"but the limit is {soft_limit}: lower those keys to fit in "
        f"{max(soft_limit - budget.reserve, 0)} together, or raise LimitNOFILE= "
        "(systemd) / ulimit -n"
    )


@dataclass(frozen=True)
class DescriptorLimit:
    """RLIMIT_NOFILE after :func:`raise_descriptor_limit`; ``was``: the soft limit before."""

    soft: int
    hard: int
    was: int

    def log_fields(self) -> dict[str, object]:
        """The limit as the ``descriptor_limit`` line logs it (docs/operations.md)."""
        return {"soft_limit": self.soft, "hard_limit": self.hard, "raised_from": self.was}


def raise_descriptor_limit() -> DescriptorLimit:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (what it may do unprivileged)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("descriptor_limit_not_raised", soft_limit=soft, hard_limit=hard, error=str(exc))
            return DescriptorLimit(soft, hard, soft)
    return DescriptorLimit(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard, soft)


def prepare_descriptors(settings: Settings) -> DescriptorLimit:
    """At start: raise the limit, log it with the budget, warn (naming the keys) when the caps
    do not fit."""
    limit = raise_descriptor_limit()
    budget = descriptor_budget(settings)
    log.info("descriptor_limit", **limit.log_fields(), **budget.log_fields())
    shortfall = budget_shortfall(budget, limit.soft)
    if shortfall is not None:
        log.warning("descriptor_budget_exceeded", problem=shortfall, keys=sorted(budget.caps))
    return limit
