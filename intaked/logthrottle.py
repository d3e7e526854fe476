"""Logging an event that may repeat thousands of times a second as one line per interval.

A flood (connections refused at a cap, ``accept()`` failing for lack of descriptors, slow peers
timed out) must reach the operator as a few lines that say how many, never as a line per
occurrence: a log that grows by megabytes a second is itself an outage. :class:`ThrottledEvent`
writes the first occurrence at once, counts the ones that follow within ``interval_seconds``, and
writes them as one line (``count``: occurrences since the previous line) when the interval is
over: at the next occurrence, or from a timer on the event loop when the flood has stopped, or
at :meth:`ThrottledEvent.flush` (the daemon's shutdown).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final

#: One line per event and per this many seconds, at most.
REPEATED_EVENT_LOG_SECONDS: Final = 10.0


@dataclass(eq=False)
class ThrottledEvent:
    """One structlog event (``event`` at ``level``), logged at most once per ``interval_seconds``.

    Call :meth:`occurred` from one thread: the event loop's (whose timer then writes a flood's
    tail), or any one thread without a loop (the tail then waits for the next occurrence or
    :meth:`flush`).
    """

    logger: Any
    event: str
    _: KW_ONLY
    level: str = "warning"
    interval_seconds: float = REPEATED_EVENT_LOG_SECONDS
    clock: Callable[[], float] = time.monotonic
    # What has happened since the last line, and when the next one may be written.
    _next_line_at: float = field(default=float("-inf"), init=False, repr=False)
    _pending: int = field(default=0, init=False, repr=False)
    _pending_fields: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _flush_timer: asyncio.TimerHandle | None = field(default=None, init=False, repr=False)

    def occurred(self, **fields: Any) -> None:
        """Count one occurrence; log it (with those since the last line) unless a line was
        written less than an interval ago. ``fields`` describe the latest occurrence."""
        self._pending += 1
        self._pending_fields = fields
        now = self.clock()
        if now >= self._next_line_at:
            self._write(now)
        elif self._flush_timer is None:
            self._start_flush_timer(self._next_line_at - now)

    def flush(self) -> None:
        """Write the occurrences not logged yet, if any."""
        if self._pending:
            self._write(self.clock())

    def _start_flush_timer(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._flush_timer = loop.call_later(delay, self.flush)

    def _write(self, now: float) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        write: Callable[..., Any] = getattr(self.logger, self.level)  # as configured now
        write(
            self.event,
            count=self._pending,
            interval_seconds=self.interval_seconds,
            **self._pending_fields,
        )
        self._pending = 0
        self._pending_fields = {}
        self._next_line_at = now + self.interval_seconds
