"""SQLite on a disk that fills up, then has room again: senders get ``451`` while nothing can be
stored, and every mail that was answered ``250`` is a ticket, acknowledged once, within seconds of
the disk having room again (issue 13, point 1). The disk is a small tmpfs of the test's own
(mounting needs root, as in CI; the test is skipped with the reason otherwise)."""

from __future__ import annotations

import contextlib
import os
import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.support.dovecot import free_port
from tests.support.processes import DaemonProcess, backlog
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

DISK_BYTES = 48 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write until the disk is full; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1024 * 1024, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def report(n: int) -> bytes:
    padding = ("診斷資料 " * 4000 + "\r\n") * 2  # about 100 kB: each mail needs room of its own
    return (
        f"From: user{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: 磁碟 {n}\r\n"
        f"Message-ID: <full-{n}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{padding}"
    ).encode()


def send(port: int, n: int) -> int:
    """The SMTP reply code to DATA (250 stored, 451 try later)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        try:
            client.sendmail(f"user{n}@example.com", ["helpdesk@example.com"], report(n))
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code
    return 250


@pytest.mark.slow
def test_a_full_disk_answers_451_and_everything_accepted_is_filed_once_it_has_room(
    small_disk: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{small_disk / 'intaked.db'}"
    port = free_port()
    sink = SmtpSink().start()
    config = tmp_path / "intaked.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[metrics]\nlisten = ""\n[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\nfrom_address = "helpdesk@example.com"\n'
        "[outbox]\npoll_seconds = 0.5\n"
        "[intake]\nretry_base_seconds = 0.2\n"
        "[acknowledgements]\nmax_per_sender_per_hour = 100\n"
        '[logging]\nlevel = "info"\nformat = "json"\n',
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, tmp_path / "intaked.log")
    engine = create_engine(url)
    try:
        daemon.wait_started()
        accepted = [n for n in range(3) if send(port, n) == 250]
        assert accepted == [0, 1, 2]
        filler = fill(small_disk)
        replies: list[int] = []
        n = 3
        deadline = time.monotonic() + 30
        while 451 not in replies and time.monotonic() < deadline:
            replies.append(send(port, n))
            if replies[-1] == 250:
                accepted.append(n)
            n += 1
        assert 451 in replies, f"a full disk defers the sender (replies: {replies})"
        time.sleep(2)  # the back office and the sender meet the full disk too
        filler.unlink()
        freed = time.monotonic()
        while send(port, n) != 250:
            assert time.monotonic() - freed < 10, "room again: the next mail is stored"
            time.sleep(0.2)
        accepted.append(n)

        wait_until(
            lambda: backlog(engine) == (len(accepted), 0, 0),
            timeout=15,
            what="every accepted mail filed and acknowledged",
        )
        acks = [m.message["In-Reply-To"] for m in sink.messages()]
        assert sorted(acks) == sorted(f"<full-{n}@example.com>" for n in accepted), "each once"
    finally:
        daemon.stop()
        engine.dispose()
        sink.stop()
