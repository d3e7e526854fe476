"""Rate limits of the Twilio dispatcher: Twilio's calls per second (``twilio.calls_per_second``).

:class:`SharedTokenBucket` is the one the dispatcher uses: a bucket in the database
(intaked/store/ratebuckets.py) named after the Twilio account, so every daemon sharing the store
(several nodes on one PostgreSQL) spends one budget together, whatever their number.
:class:`TokenBucket` is the same limit kept in one process's memory, for tests and tools that
have no store to share.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine

from intaked.store.ratebuckets import take
from intaked.store.types import utcnow


class RateLimit(Protocol):
    """Something that hands out permissions at a rate."""

    def try_acquire(self) -> float:
        """Take a permission: 0.0 when taken, else the seconds until one will be there."""
        ...

    def acquire(self) -> None:
        """Wait for a permission and take it."""
        ...


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, ``capacity`` at once, for every thread
    of this process only. A daemon's calls go through :class:`SharedTokenBucket` instead, which
    every daemon sharing the store spends together (no dividing ``twilio.calls_per_second`` by
    the number of daemons)."""

    def __init__(
        self,
        rate: float,
        capacity: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def try_acquire(self) -> float:
        """Take a token: 0.0 when taken, else the seconds until one will be there (none taken)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._rate

    def acquire(self) -> None:
        """Wait for a token and take it."""
        while (wait := self.try_acquire()) > 0:
            self._sleep(wait)


class SharedTokenBucket:
    """At most ``rate`` acquisitions per second on average, ``capacity`` at once, across every
    thread, process and node that takes from the bucket ``name`` of the store behind ``engine``.
    Each take is one short transaction holding the bucket's row; ``clock`` gives wall-clock UTC
    instants (the nodes share no monotonic clock)."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        rate: float,
        capacity: float = 1.0,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self.name = name
        self._rate = rate
        self._capacity = capacity
        self._clock = clock
        self._sleep = sleep

    def try_acquire(self) -> float:
        """Take a token: 0.0 when taken, else the seconds until one will be there (none taken)."""
        return take(self._engine, self.name, self._rate, self._capacity, self._clock())

    def acquire(self) -> None:
        """Wait for a token and take it (another node may take the one waited for: then wait again)."""
        while (wait := self.try_acquire()) > 0:
            self._sleep(wait)


def call_bucket_name(account_sid: str) -> str:
    """The shared bucket of one Twilio account's call creations."""
    return f"twilio_calls:{account_sid}"[:64]
