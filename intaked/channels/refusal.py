"""A connection turned away at a listener's cap: one reply, then closed at once.

A listener that is full must not leave new connections waiting (each waiting connection holds a
descriptor, and a sender left without a reply waits for its own timeout): it answers with a
line the peer understands (SMTP ``421``, HTTP ``503``) and hangs up. Nothing the peer sends is
read.
"""

from __future__ import annotations

import asyncio
from typing import cast


class RefuseAndClose(asyncio.Protocol):
    """Writes ``reply`` and closes the connection as soon as it is made."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        writer = cast(asyncio.WriteTransport, transport)
        try:
            writer.write(self._reply)  # a few bytes: the socket buffer takes them at once
        finally:
            writer.close()

    def data_received(self, data: bytes) -> None:
        """Ignored: the connection is closing."""
