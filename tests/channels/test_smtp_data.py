"""DATA is read as RFC 5321 says (4.5.2: the end-of-data line, dot-unstuffing) however the bytes
arrive, a message over the size limit is read to its end and dropped, and the SMTP conversation
goes on after it."""

from __future__ import annotations

import asyncio
import smtplib
import zlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intaked.channels.smtpdata import read_message
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until


def read(chunks: Sequence[bytes], size_limit: int | None = None, limit: int = 1 << 20) -> bytes | None:
    async def scenario() -> bytes | None:
        reader = asyncio.StreamReader(limit=limit)
        for chunk in chunks:
            reader.feed_data(chunk)
        reader.feed_data(b"QUIT\r\n")  # what comes after DATA is left for the next command
        content = await read_message(reader, size_limit)
        assert await reader.readline() == b"QUIT\r\n"
        return content

    return asyncio.run(scenario())


def stuffed(lines: Sequence[bytes]) -> bytes:
    """What a client sends for these lines: leading dots doubled, then the end-of-data line."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (b".\r\n", b""),
        (b"Subject: x\r\n\r\nhello.\r\n.\r\n", b"Subject: x\r\n\r\nhello.\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\nend\r\n.\r\n", b"..\r\nend\r\n"),
        (b"a\r\n..b.\r\n.c\r\n.\r\n", b"a\r\n.b.\r\nc\r\n"),
        (b"x.\r\n.\r\n", b"x.\r\n"),
    ],
)
def test_the_end_of_data_line_and_leading_dots(sent: bytes, message: bytes) -> None:
    assert read([sent]) == message
    assert read([bytes([b]) for b in sent]) == message, "the same, one byte at a time"


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=30
    ),
    cut=st.integers(min_value=1, max_value=7),
)
def test_any_message_in_any_pieces_reads_back_exactly(lines: list[bytes], cut: int) -> None:
    sent = stuffed(lines)
    chunks = [sent[i : i + cut] for i in range(0, len(sent), cut)]
    assert read(chunks) == b"".join(line + b"\r\n" for line in lines)


def test_a_message_over_the_limit_is_read_to_its_end_and_dropped() -> None:
    sent = stuffed([b"x" * 70] * 100)
    assert read([sent], size_limit=4096) is None
    assert read([sent], size_limit=len(sent) - 3) is not None, "the limit counts what was sent"


def test_a_line_longer_than_the_stream_limit_is_read_all_the_same() -> None:
    line = b"y" * 5000
    assert read([stuffed([line, b"end"])], limit=1024) == line + b"\r\nend\r\n"


def test_a_session_goes_on_after_an_oversize_and_a_large_message(sqlite_url: str) -> None:
    daemon = DaemonThread(make_settings(sqlite_url, smtp_intake={"max_message_bytes": 64 * 1024})).start()
    try:
        big = b"Subject: big\r\n\r\n" + (b"." + b"z" * 60 + b"\r\n") * 2000
        fits = b"Subject: fits\r\n\r\n" + (b".line\r\n" + b"w" * 70 + b"\r\n") * 700
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
            client.ehlo()
            client.esmtp_features.pop("size", None)
            client.mail("a@example.com")
            client.rcpt("helpdesk@example.com")
            assert client.data(big)[0] == 552
            assert client.sendmail("a@example.com", ["helpdesk@example.com"], fits) == {}
            assert client.noop()[0] == 250
            assert client.docmd("HELP", "DATA") == (250, b"Syntax: DATA")
        wait_until(lambda: daemon.ticket_count() == 1, what="the message that fits filed")
        with daemon.engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT raw FROM inbound_items").scalar_one()
    finally:
        daemon.stop()
    assert zlib.decompress(raw) == fits, "stored exactly as sent, dots and all"
