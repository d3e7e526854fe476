"""One IMAP worker's lease on its mailbox (intaked/store/leases.py), as the worker uses it.

The worker pulls nothing without the lease: :meth:`MailboxLease.acquire` before it connects;
while it holds the lease, a thread of the lease's own renews it every third of its length, so
that a long fetch (a backlog of large mail on a slow link) never lets it run out while the
process lives; a process that dies or freezes stops renewing, and another node takes over. The
worker asks :meth:`MailboxLease.keep` between batches and while it idles whether the renewal
found the lease taken over, and :meth:`MailboxLease.confirm` checks the lease and its fence
inside the transaction that commits captured mail, and again before it moves messages. Losing
the lease raises :class:`~intaked.store.leases.LeaseLost`, which ends the pass. With one node
(SQLite, or a single daemon on PostgreSQL) the lease is always ours.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import Connection, Engine
from structlog.typing import FilteringBoundLogger

from intaked.store.leases import LeaseLost, ensure_held, lease_of, release, take_or_renew
from intaked.store.settle import describe_error
from intaked.store.types import utcnow

#: A holder renews its lease when this fraction of it has passed; a node waiting for the lease
#: tries as often.
RENEW_FRACTION = 1 / 3


class MailboxLease:
    """The lease of mailbox ``name`` for ``holder`` (its fence while held, else None). ``log``
    is the worker's, with ``mailbox`` and ``holder`` bound."""

    def __init__(
        self, engine: Engine, name: str, holder: str, lease_seconds: float, log: FilteringBoundLogger
    ) -> None:
        self._engine = engine
        self.name = name
        self.holder = holder
        self.lease_seconds = lease_seconds
        self._log = log
        self._lock = threading.Lock()  # fence and _lost, shared with the renewing thread
        self.fence: int | None = None
        self._lost: LeaseLost | None = None  # what the renewal found, for the worker to raise
        self._told_holder: str | None = None  # whom imap_lease_held_elsewhere named last
        self._stop_renewing = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renewal_failing_since: float | None = None

    @property
    def renew_seconds(self) -> float:
        """How often the holder renews, and a node without the lease tries again."""
        return self.lease_seconds * RENEW_FRACTION

    def acquire(self) -> bool:
        """Take (or renew) the lease; False, logged once per other holder, when another has it."""
        held = self.fence
        previous = lease_of(self._engine, self.name) if held is None else None
        fence = take_or_renew(self._engine, self.name, self.holder, self.lease_seconds, utcnow())
        with self._lock:
            self.fence, self._lost = fence, None
        if fence is None:
            self._tell_held_elsewhere()
            return False
        if fence != held:
            before = previous.holder if previous is not None else None
            self._log.info("imap_lease_taken", fence=fence, previous_holder=before)
            self._told_holder = None
        self._start_renewing()
        return True

    def keep(self) -> None:
        """Raise LeaseLost when the renewal found the lease taken over."""
        with self._lock:
            lost, self._lost = self._lost, None
        if lost is not None:
            raise lost

    def _start_renewing(self) -> None:
        if self._renewer is not None and self._renewer.is_alive():
            return
        self._stop_renewing = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"imap-lease-{self.name}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        """The renewing thread: every third of the lease, while we hold it."""
        stop = self._stop_renewing
        while not stop.wait(self.renew_seconds):
            with self._lock:
                fence = self.fence
            if fence is None:
                continue
            try:
                renewed = take_or_renew(self._engine, self.name, self.holder, self.lease_seconds, utcnow())
            except Exception as exc:  # the store is out of reach: the lease may run out meanwhile
                self._renewal_failed(exc)
                continue
            if self._renewal_failing_since is not None:
                self._log.info(
                    "imap_lease_renewed",
                    after_seconds=round(time.monotonic() - self._renewal_failing_since, 1),
                )
                self._renewal_failing_since = None
            if renewed != fence:
                with self._lock:
                    if self.fence == fence:
                        self._lost = LeaseLost(
                            f"the lease of mailbox {self.name} (fence {fence}) was taken over"
                        )

    def _renewal_failed(self, exc: Exception) -> None:
        if self._renewal_failing_since is None:
            self._renewal_failing_since = time.monotonic()
            self._log.warning("imap_lease_not_renewed", error=describe_error(exc))

    def confirm(self, conn: Connection | None = None, *, not_stored: int = 0) -> None:
        """Inside ``conn``'s transaction (else a short one of its own): lock the row and check
        that the lease is still ours with our fence; raises LeaseLost (rolling back) when not."""
        fence = self.fence
        if fence is None:
            raise LeaseLost(f"the lease of mailbox {self.name} is not held", not_stored=not_stored)
        if conn is None:
            with self._engine.begin() as own:
                ensure_held(own, self.name, self.holder, fence, not_stored=not_stored)
            return
        ensure_held(conn, self.name, self.holder, fence, not_stored=not_stored)

    def lost(self, exc: LeaseLost) -> None:
        """Log the loss (``imap_lease_lost``, with the new holder when the store says) and forget
        our fence."""
        try:
            now = lease_of(self._engine, self.name)
        except Exception:  # the store may be failing too; the loss is what matters
            now = None
        self._log.warning(
            "imap_lease_lost",
            fence=self.fence,
            new_holder=now.holder if now is not None else None,
            new_fence=now.fence if now is not None else None,
            not_stored=exc.not_stored,
        )
        with self._lock:
            self.fence = None

    def release(self) -> None:
        """Stop renewing, and give the lease back (a clean stop), so another node takes over at once."""
        self._stop_renewing.set()
        if self._renewer is not None:
            self._renewer.join(30)
            self._renewer = None
        if self.fence is None:
            return
        try:
            if release(self._engine, self.name, self.holder):
                self._log.info("imap_lease_released", fence=self.fence)
        except Exception as exc:  # it runs out by itself
            self._log.warning("imap_lease_not_released", error=describe_error(exc))
        with self._lock:
            self.fence = None

    def _tell_held_elsewhere(self) -> None:
        lease = lease_of(self._engine, self.name)
        other = lease.holder if lease is not None else None
        if other == self._told_holder:
            return
        self._told_holder = other
        self._log.info(
            "imap_lease_held_elsewhere",
            by=other,
            until=lease.expires_at.isoformat() if lease is not None and lease.expires_at else None,
            retry_in=round(self.renew_seconds, 1),
        )
