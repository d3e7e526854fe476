"""A light SMTP load generator for the benchmarks: many concurrent sessions on one asyncio loop.

The sender must not be what is measured. Twenty ``smtplib`` threads spend much of a core (and the
GIL) on their own side of the conversation, which on a 2-core machine is taken from the server
under test. Here each session is a coroutine speaking plain SMTP over an asyncio stream, and every
message is dot-stuffed before the clock starts.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC on Linux), comparable across processes on one
machine, so another process (the acknowledgement sink) can time the same messages.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_to: str
    data: bytes  # dot-stuffed, ends with CRLF.CRLF


@dataclass
class Sent:
    index: int
    data_end: float  # monotonic time the last byte of DATA was handed to the kernel
    reply: float  # monotonic time the reply to DATA arrived
    code: int


_LEADING_DOT = re.compile(rb"(?m)^\.")


def envelope(mail_from: str, rcpt_to: str, raw: bytes) -> Envelope:
    """Prepare one message for sending: CRLF line ends, dot-stuffing, the final dot line."""
    body = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return Envelope(mail_from, rcpt_to, _LEADING_DOT.sub(b"..", body) + b".\r\n")


async def _reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return int(line[:3])


async def _session(
    port: int,
    indexed: Sequence[tuple[int, Envelope]],
    out: list[Sent],
    start: float,
    rate: float,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if await _reply(reader) != 220:
            raise ConnectionError("no greeting")
        writer.write(b"EHLO bench.example.com\r\n")
        await _reply(reader)
        for index, env in indexed:
            if rate:  # paced: message i is due at start + i / rate
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            writer.write(f"MAIL FROM:<{env.mail_from}>\r\n".encode())
            if (code := await _reply(reader)) != 250:
                raise ConnectionError(f"MAIL answered {code}")
            writer.write(f"RCPT TO:<{env.rcpt_to}>\r\n".encode())
            if (code := await _reply(reader)) != 250:
                raise ConnectionError(f"RCPT answered {code}")
            writer.write(b"DATA\r\n")
            if (code := await _reply(reader)) != 354:
                raise ConnectionError(f"DATA answered {code}")
            writer.write(env.data)
            data_end = time.monotonic()
            code = await _reply(reader)
            out.append(Sent(index, data_end, time.monotonic(), code))
        writer.write(b"QUIT\r\n")
        await _reply(reader)
    finally:
        writer.close()


async def _send_all(port: int, envelopes: Sequence[Envelope], sessions: int, rate: float) -> list[Sent]:
    out: list[Sent] = []
    indexed = list(enumerate(envelopes))
    start = time.monotonic()
    await asyncio.gather(*(_session(port, indexed[i::sessions], out, start, rate) for i in range(sessions)))
    return out


def send_all(
    port: int, envelopes: Sequence[Envelope], sessions: int, rate: float = 0.0
) -> tuple[list[Sent], float]:
    """Send every envelope over ``sessions`` concurrent SMTP sessions (paced at ``rate`` messages/s
    in total when given); returns one record per message and the wall time in seconds."""
    start = time.monotonic()
    sent = asyncio.run(_send_all(port, envelopes, sessions, rate))
    return sent, time.monotonic() - start
