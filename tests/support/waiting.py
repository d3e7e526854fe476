"""Polling until something a user can see has happened (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough for a daemon's back office to start on a machine running the suite on every core
# (it took 15 s under load); a test that means "within N seconds" passes its own timeout.
DEFAULT_TIMEOUT_SECONDS = 30.0


def wait_until(
    check: Callable[[], T], timeout: float = DEFAULT_TIMEOUT_SECONDS, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last: T = check()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)
        last = check()
    return last
