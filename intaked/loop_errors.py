"""The front process's event-loop exception handler: errors that repeat are logged as one line
per interval with a count, and a listener out of descriptors sheds connections instead of
spinning.

When ``accept()`` fails with EMFILE/ENFILE (no descriptor left for the new connection), asyncio
(``BaseSelectorEventLoop._accept_connection`` in asyncio/selector_events.py) reports it to the
loop's exception handler as "socket.accept() out of system resource", stops watching that
listening socket and schedules a retry a second later; but in Python 3.11 it goes on calling
``accept()`` up to ``backlog`` times in the same pass, reporting and scheduling a retry for each
failure. The connection that could not be accepted stays in the kernel's queue, so every retry
fails again: the retries multiply, the loop spins and the default handler writes a line with a
traceback for each (500,000 lines in 70 s were seen). Here:

- every context the loop reports goes to a :class:`~intaked.logthrottle.ThrottledEvent` (one per
  kind of error), so a repeating error is one line per interval, with a count;
- on EMFILE/ENFILE the handler sheds the waiting connection: it closes a spare descriptor kept
  open for this, accepts the connection into the slot it freed, closes it at once (the peer sees
  the connection closed, not a server that never answers), and takes the spare back. Each
  failure then consumes a waiting connection, so the work done is bounded by the connections
  arriving, and the listener is quiet again as soon as its queue is empty.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import Any, Final, Protocol

import structlog

from intaked.logthrottle import ThrottledEvent

log = structlog.get_logger(__name__)

#: accept() errors asyncio reports as "out of system resource".
OUT_OF_RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Of those, the ones a freed descriptor cures.
OUT_OF_DESCRIPTORS_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE})
#: Distinct kinds of other loop errors tracked at once (their messages may embed reprs).
MAX_ERROR_KINDS: Final = 100
GENERIC_MESSAGE: Final = "unhandled error in the event loop"


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _listener_name(listener: Any) -> str | None:
    try:
        host, port = listener.getsockname()[:2]
    except (OSError, AttributeError, TypeError, ValueError):
        return None
    return f"{host}:{port}"


class LoopErrorHandler:
    """``loop.set_exception_handler(LoopErrorHandler())``; :meth:`flush` at shutdown."""

    def __init__(self) -> None:
        self._spare = _open_spare()
        self._accept_failures = ThrottledEvent(log, "listener_accept_failed", level="error")
        self._other_errors: dict[str, ThrottledEvent] = {}
        self.shed = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exception = context.get("exception")
        listener = context.get("socket")
        if (
            isinstance(exception, OSError)
            and exception.errno in OUT_OF_RESOURCE_ERRNOS
            and listener is not None
        ):
            self._accept_failed(exception, listener)
            return
        message = str(context.get("message") or GENERIC_MESSAGE)
        event = self._other_errors.get(message)
        if event is None:
            if len(self._other_errors) >= MAX_ERROR_KINDS:
                self.flush()
                self._other_errors.clear()
            event = self._other_errors[message] = ThrottledEvent(log, "event_loop_error", level="error")
        event.occurred(
            message=message,
            error=repr(exception) if exception is not None else None,
            exc_info=exception if isinstance(exception, BaseException) else None,
        )

    def flush(self) -> None:
        """Write the counts not logged yet."""
        self._accept_failures.flush()
        for event in self._other_errors.values():
            event.flush()

    def _accept_failed(self, exception: OSError, listener: _HasFileno) -> None:
        shed = exception.errno in OUT_OF_DESCRIPTORS_ERRNOS and self._shed_one(listener)
        self.shed += shed
        self._accept_failures.occurred(
            error=os.strerror(exception.errno or 0),
            listener=_listener_name(listener),
            shed_total=self.shed,
            spare_descriptor=self._spare is not None,
        )

    def _shed_one(self, listener: _HasFileno) -> bool:
        """Accept one waiting connection into the spare's slot and close it; True if one was."""
        if self._spare is None:  # lost to another thread last time: try to get it back
            self._spare = _open_spare()
            return False
        os.close(self._spare)
        self._spare = None
        # A socket object over the listener's own descriptor (no dup: that would need a slot),
        # detached afterwards so that the listener stays open.
        wrapper = socket.socket(fileno=listener.fileno())
        try:
            connection, _ = wrapper.accept()
        except OSError:
            return False
        else:
            connection.close()
            return True
        finally:
            wrapper.detach()
            self._spare = _open_spare()
