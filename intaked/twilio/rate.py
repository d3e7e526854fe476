"""A rate limit shared by the sending loops of one process (Twilio's calls per second)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, ``capacity`` at once, for every thread
    of this process. Several daemons sharing one Twilio account each have their own bucket: give
    each ``twilio.calls_per_second`` divided by their number to stay under the account's rate."""

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
