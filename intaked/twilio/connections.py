"""The webhook listener's connections: a cap, and a deadline for each request head.

aiohttp (3.14) closes a connection that has no complete request ``keepalive_timeout`` seconds
after it opened or after its last response (``RequestHandler._process_keepalive``), and that is
the idle keep-alive timeout we give it (``webhooks.keepalive_timeout_seconds``). It has no cap on
connections and no deadline for a request head that arrives one byte at a time; both are here,
around aiohttp's own protocol object (:class:`GuardedConnection` passes every transport event
through to it):

- the head (request line and headers) must be complete within ``webhooks.header_timeout_seconds``
  of the connection opening, or of its first byte after a previous response; otherwise the
  connection is closed (the body's deadline is the request handler's, see server.py);
- at most ``webhooks.max_connections`` connections are open. At the cap a new connection takes
  the place of the oldest one that is idle or still sending its head (a slow-header flood cannot
  keep Twilio out: Twilio's head arrives at once, and a connection whose request is being
  handled is never dropped); when every connection is in the middle of a request, the new one is
  answered ``503`` and closed, so that no connection waits holding a descriptor.

Drops and time-outs are logged as :class:`~intaked.logthrottle.ThrottledEvent` lines with counts.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from typing import Final, cast

import structlog

from intaked.channels.refusal import RefuseAndClose
from intaked.logthrottle import ThrottledEvent

log = structlog.get_logger(__name__)

REPLY_UNAVAILABLE: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
)


class Phase(enum.Enum):
    """Where a connection is in its request cycle."""

    HEAD = "head"  # opened, or first byte of a next request: the head is on its way
    REQUEST = "request"  # the head is in; the handler reads the body and answers
    IDLE = "idle"  # answered; aiohttp's keep-alive timeout runs


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the head deadline and the pool's bookkeeping."""

    def __init__(self, pool: ConnectionPool, inner: asyncio.Protocol) -> None:
        self.inner = inner
        self.phase = Phase.HEAD
        self.transport: asyncio.Transport | None = None
        self.dropped = False
        self._pool = pool
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.inner.connection_made(transport)
        if self.dropped:  # its slot was taken before the loop got to it
            self.close()
        else:
            self._start_head_clock()

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.IDLE:
            self.phase = Phase.HEAD
            self._start_head_clock()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        self._pool.release(self)
        self._pool.forget(self)
        self.inner.connection_lost(exc)

    def request_started(self) -> None:
        """The head is in (aiohttp called the request handler)."""
        self.phase = Phase.REQUEST
        self._stop_head_clock()

    def request_finished(self) -> None:
        """The handler has its answer; the connection is idle once it is written."""
        self.phase = Phase.IDLE

    def drop(self) -> None:
        """Give up this connection's slot and close it."""
        self.dropped = True
        self._pool.release(self)
        self.close()

    def close(self) -> None:
        self._stop_head_clock()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _start_head_clock(self) -> None:
        self._stop_head_clock()
        self._head_deadline = asyncio.get_running_loop().call_later(
            self._pool.header_timeout_seconds, self._head_overdue
        )

    def _stop_head_clock(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_overdue(self) -> None:
        self._head_deadline = None
        if self.phase is Phase.HEAD:
            self._pool.head_timeouts.occurred(
                header_timeout_seconds=self._pool.header_timeout_seconds, peer=self._peer()
            )
            self.close()

    def _peer(self) -> str | None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return str(peer[0]) if isinstance(peer, tuple) else None


class _Refusal(RefuseAndClose):
    """A refused connection the pool still counts until its socket is closed."""

    def __init__(self, pool: ConnectionPool, reply: bytes) -> None:
        super().__init__(reply)
        self._pool = pool

    def connection_lost(self, exc: Exception | None) -> None:
        self._pool.forget(self)


class ConnectionPool:
    """The open connections of one listener; :meth:`protocol_factory` is given to ``create_server``."""

    def __init__(
        self,
        make_inner: Callable[[], asyncio.Protocol],
        *,
        max_connections: int,
        header_timeout_seconds: float,
    ) -> None:
        self._make_inner = make_inner
        self.max_connections = max_connections
        self.header_timeout_seconds = header_timeout_seconds
        self._open: dict[GuardedConnection, None] = {}  # oldest first
        self._by_inner: dict[asyncio.BaseProtocol, GuardedConnection] = {}
        # every protocol handed to the loop whose socket is not closed yet (dropped ones too)
        self._unclosed: set[asyncio.BaseProtocol] = set()
        self._closing = False
        self.head_timeouts = ThrottledEvent(log, "webhook_head_timed_out")
        self.body_timeouts = ThrottledEvent(log, "webhook_body_timed_out")
        self.peers_gone = ThrottledEvent(log, "webhook_peer_left_mid_body", level="info")
        self._dropped = ThrottledEvent(log, "webhook_connection_dropped_at_cap")
        self._refused = ThrottledEvent(log, "webhook_connection_refused_at_cap")

    def protocol_factory(self) -> asyncio.Protocol:
        """A new connection: guarded, or refused with 503 when every slot is mid-request (or
        the listener is stopping)."""
        if self._closing:
            return self._refusal()
        if len(self._open) >= self.max_connections:
            oldest_waiting = next((c for c in self._open if c.phase is not Phase.REQUEST), None)
            if oldest_waiting is None:
                self._refused.occurred(max_connections=self.max_connections)
                return self._refusal()
            self._dropped.occurred(
                max_connections=self.max_connections, dropped_phase=oldest_waiting.phase.value
            )
            oldest_waiting.drop()  # its slot is the new one's now, though it closes a tick later
        connection = GuardedConnection(self, self._make_inner())
        self._open[connection] = None  # counted from now: the loop calls connection_made later
        self._by_inner[connection.inner] = connection
        self._unclosed.add(connection)
        return connection

    def _refusal(self) -> asyncio.Protocol:
        refusal = _Refusal(self, REPLY_UNAVAILABLE)
        self._unclosed.add(refusal)
        return refusal

    def forget(self, protocol: asyncio.BaseProtocol) -> None:
        """``protocol``'s socket is closed (the loop called its ``connection_lost``)."""
        self._unclosed.discard(protocol)

    def release(self, connection: GuardedConnection) -> None:
        self._open.pop(connection, None)
        self._by_inner.pop(connection.inner, None)

    def connection_of(self, inner: asyncio.BaseProtocol) -> GuardedConnection | None:
        """The guarded connection around aiohttp's protocol ``inner`` (``request.protocol``)."""
        return self._by_inner.get(inner)

    async def close_all(self, timeout_seconds: float) -> None:
        """Close every connection and wait (at most ``timeout_seconds``) until their sockets are
        closed: on stop, an idle keep-alive peer, one still sending its head, one dropped at the
        cap or one accepted while the listener closed is not left to the garbage collector.

        A transport closes its socket a loop iteration after ``close()``, and a connection
        accepted just before the listener closed is made an iteration later still; this waits
        for both, and anything made meanwhile is refused."""
        self._closing = True
        try:
            async with asyncio.timeout(timeout_seconds):
                while self._unclosed or self._open:
                    for connection in list(self._open):
                        connection.drop()  # also closes one whose connection_made is to come
                    await asyncio.sleep(0.01)
        except TimeoutError:
            log.warning("webhook_connections_left_open", count=len(self._unclosed))

    def flush_logs(self) -> None:
        for event in (
            self.head_timeouts,
            self.body_timeouts,
            self.peers_gone,
            self._dropped,
            self._refused,
        ):
            event.flush()
