"""Reading the message of an SMTP/LMTP DATA command (RFC 5321 4.1.1.4 and 4.5.2) into one buffer.

aiosmtpd reads DATA one line at a time and keeps every line as an object of its own until the
end: a 25 MB attachment (320,000 base64 lines) costs about twice its size in line objects, and
while the event loop works through them line by line the socket's data piles up in the stream's
buffer. Here the stream is searched for ``.<CRLF>`` (C speed, no per-line objects): most mail
comes in a few pieces, the last of them ending with the end-of-data line, so a message in flight
costs about its own size, plus one copy for the moment it is joined.

The reply contract is aiosmtpd's: the message is read to its end-of-data line whatever happens,
and a message over the size limit is dropped on the way and answered 552 at the end.
"""

from __future__ import annotations

import asyncio
from typing import Final

#: The end of a line that ends the data, when it starts a line: ``<CRLF>.<CRLF>``.
DOT_LINE_END: Final = b".\r\n"
CRLF: Final = b"\r\n"


async def read_message(reader: asyncio.StreamReader, size_limit: int | None) -> bytes | None:
    """The message up to its end-of-data line, leading dots removed (dot-unstuffing); None when
    it was larger than ``size_limit`` bytes as sent (the rest is still read, and dropped).
    Raises ConnectionResetError when the connection ends before the end-of-data line."""
    pieces: list[bytes | memoryview] = []
    received = 0
    last_two = CRLF  # the last two bytes read: the data starts a line
    while True:
        piece = await _next_piece(reader)
        ended = piece.endswith(DOT_LINE_END) and _ends_line(last_two, piece[-5:-3])
        last_two = (last_two + piece[-2:])[-2:]
        received += len(piece) - (len(DOT_LINE_END) if ended else 0)
        if size_limit and received > size_limit:
            pieces.clear()  # over the limit: keep reading, keep nothing
        elif ended:
            pieces.append(memoryview(piece)[: -len(DOT_LINE_END)])
        else:
            pieces.append(piece)
        if ended:
            break
    if size_limit and received > size_limit:
        return None
    return unstuff(b"".join(pieces))


async def _next_piece(reader: asyncio.StreamReader) -> bytes:
    """Everything up to the next ``.<CRLF>``, or as much as the stream's limit allows."""
    try:
        return await reader.readuntil(DOT_LINE_END)
    except asyncio.LimitOverrunError as exc:  # no ".<CRLF>" within the limit: a huge line
        piece = await reader.read(exc.consumed)
    except asyncio.IncompleteReadError:
        piece = b""
    if not piece:
        raise ConnectionResetError("the connection ended during DATA")
    return piece


def _ends_line(last_two: bytes, before_dot: bytes) -> bool:
    """Is a period preceded by ``before_dot`` (up to two bytes of this piece), after the
    previous pieces ending with ``last_two``, at the start of a line?"""
    return (last_two + before_dot)[-2:] == CRLF


def unstuff(data: bytes) -> bytes:
    """Remove the period that starts a line (RFC 5321 4.5.2: the client doubled it)."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")
