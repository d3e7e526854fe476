"""Closing a listening socket without losing the connections it has just accepted.

On Python 3.11 a connection that ``asyncio`` accepted in the same loop iteration as
``Server.close()`` is set up by a task that runs only afterwards; that task then fails on the
closed server (``Server._attach`` asserts it still has sockets), silently, and the accepted socket
is left open for the garbage collector (a ``ResourceWarning``) with nobody answering its peer.
:func:`close_listener` first stops accepting, lets those set-up tasks run while the server still
counts them, and only then closes it; every connection so made reaches its protocol, which the
caller then closes like any other.
"""

from __future__ import annotations

import asyncio

SETUP_ITERATIONS = 2  # an accepted connection's set-up task runs in the next iteration


async def close_listener(server: asyncio.Server) -> None:
    """Stop accepting on ``server``'s sockets, let accepted connections be set up, then close it."""
    loop = asyncio.get_running_loop()
    for sock in server.sockets:
        loop.remove_reader(sock.fileno())
    for _ in range(SETUP_ITERATIONS):
        await asyncio.sleep(0)
    server.close()
