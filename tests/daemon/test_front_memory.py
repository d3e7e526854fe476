"""The front keeps a message only while it is in flight: once committed and answered, nothing of
it stays in the process (not in the capture writer, nor in the SMTP session).

Measured with tracemalloc (Python's own allocations, whatever the C allocator keeps). The
database thread that committed a message lets go of its arguments a moment after the answer, so
each test waits, with a bound, for the memory to go rather than sampling it once.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

from intaked.intake.capture import CaptureWriter, RawItem
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

MIB = 1024 * 1024


def held_since(baseline: int) -> int:
    return tracemalloc.get_traced_memory()[0] - baseline


def large_mail(n: int) -> bytes:
    body = os.urandom(6 * MIB).hex().encode()  # 12 MiB of text lines
    lines = b"\r\n".join(body[i : i + 76] for i in range(0, len(body), 76))
    return f"From: a@example.com\r\nSubject: large {n}\r\n\r\n".encode() + lines + b"\r\n"


def test_the_capture_writer_keeps_nothing_of_a_committed_message(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)

    async def scenario() -> int:
        with ThreadPoolExecutor(1) as executor:
            writer = CaptureWriter(engine, executor)
            writer.start()
            await writer.submit(RawItem("smtp", b"Subject: first\r\n\r\nwarm-up\r\n"))
            tracemalloc.start()
            try:
                baseline, _ = tracemalloc.get_traced_memory()
                await writer.submit(RawItem("smtp", large_mail(1)))
                for _ in range(300):  # up to 3 s
                    if held_since(baseline) < MIB:
                        break
                    await asyncio.sleep(0.01)
                return held_since(baseline)
            finally:
                tracemalloc.stop()
                await writer.close()

    kept = asyncio.run(scenario())
    engine.dispose()
    assert kept < MIB, f"{kept / MIB:.1f} MiB of a 12 MiB message still held after its commit"


def test_an_smtp_session_keeps_nothing_of_its_delivered_mail(sqlite_url: str) -> None:
    daemon = DaemonThread(make_settings(sqlite_url)).start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
            client.sendmail("a@example.com", ["helpdesk@example.com"], b"Subject: warm-up\r\n\r\nhi\r\n")
            tracemalloc.start()
            try:
                baseline, _ = tracemalloc.get_traced_memory()
                client.sendmail("a@example.com", ["helpdesk@example.com"], large_mail(2))
                wait_until(
                    lambda: held_since(baseline) < MIB, timeout=3, what="the delivered mail to be let go"
                )
            finally:
                tracemalloc.stop()
        wait_until(lambda: daemon.ticket_count() == 2, what="both messages filed")
    finally:
        daemon.stop()
