"""Outcomes the store could not take yet: kept in memory and written again, before any new work,
as soon as the store is back.

A worker that handed a mail to the relay (or an SMS or a call to Twilio) and then failed to commit
that fact, because the database went away for a moment (a restart, a failover, a connection cut by
``pg_terminate_backend``, a full disk), must not send it again: it keeps the write that records it
and retries that write until it succeeds. Claims it holds but has not worked on yet are handed back
the same way, so that they are taken up again at once instead of waiting for a timeout. Every write
kept here is fenced by the claim token it was issued under, so writing it twice, or after another
worker took the row over, changes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = structlog.get_logger(__name__)

T = TypeVar("T")
Write = Callable[[], object]


def store_unavailable(exc: BaseException) -> bool:
    """Is ``exc`` the store being unreachable or unwritable (worth retrying the same write), as
    opposed to a fault of the data or a bug?"""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def describe_error(exc: BaseException) -> str:
    """A short account of ``exc`` for a log line: for a database error, the driver's first line
    (never the statement and its parameters, which hold whole mails and personal data)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        first = str(exc.orig).strip().splitlines()
        return f"{type(exc.orig).__name__}: {first[0] if first else ''}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


class OutcomeHeld(Exception):
    """The store was unavailable: the outcome is kept in memory and will be written when it is back."""


class Unsettled:
    """A worker's writes that wait for the store (thread-safe: a worker may run several loops)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._writes: list[tuple[str, Write]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._writes)

    def keep(self, label: str, write: Write) -> None:
        """Keep ``write`` for later without trying it now (the store is known to be down)."""
        with self._lock:
            self._writes.append((label, write))
        log.warning("outcome_held", worker=self.name, what=label)

    def record(self, label: str, write: Callable[[], T]) -> T:
        """Run ``write``; if the store is unavailable, keep it and raise :class:`OutcomeHeld`."""
        try:
            return write()
        except Exception as exc:
            if not store_unavailable(exc):
                raise
            self.keep(label, write)
            raise OutcomeHeld(f"{label}: {describe_error(exc)}") from exc

    def settle(self) -> int:
        """Write everything kept, in order; returns how many were written. Raises the store's error
        (keeping what is left) while it is still unavailable."""
        with self._lock:
            writes, self._writes = self._writes, []
        for index, (label, write) in enumerate(writes):
            try:
                write()
            except Exception as exc:
                if store_unavailable(exc):
                    with self._lock:
                        self._writes[:0] = writes[index:]
                    raise
                log.exception("held_outcome_failed", worker=self.name, what=label, error=str(exc))
                continue
            log.info("held_outcome_written", worker=self.name, what=label)
        return len(writes)
