"""PostgreSQL cuts the daemon's connections again and again (``pg_terminate_backend``, as a
failover or an administrator would) during a burst of mail: every report becomes one ticket and
gets one acknowledgement, all within seconds of the last cut, and no mail is sent twice
(issue 13, points 1 and 2)."""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from intaked.store.models import inbound_item_table, outbox_table, ticket_table
from tests.support.dovecot import free_port
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

MAILS = 120
CUTS = 8


def report(n: int) -> bytes:
    return (
        f"From: user{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: 產線電腦 {n} 當機\r\n"
        f"Message-ID: <cut-{n}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"第 {n} 台無法開機。\r\n"
    ).encode()


def send_all(port: int, accepted: list[int], stop: threading.Event) -> None:
    """A patient sender: each mail is tried until the daemon answers 250 (451 means later)."""
    for n in range(MAILS):
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                    client.sendmail(f"user{n}@example.com", ["helpdesk@example.com"], report(n))
            except (smtplib.SMTPException, OSError):
                time.sleep(0.1)
                continue
            accepted.append(n)
            break


@pytest.mark.slow
def test_cut_connections_lose_and_repeat_nothing(pg_url: str, tmp_path: Path) -> None:
    name = f"intaked-cut-{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}&application_name={name}"
    port = free_port()
    sink = SmtpSink().start()
    config = tmp_path / "intaked.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\nfrom_address = "helpdesk@example.com"\n'
        "[outbox]\npoll_seconds = 0.5\nretry_base_seconds = 0.5\nretry_max_seconds = 2\n"
        "[intake]\nmax_attempts = 100\nretry_base_seconds = 0.2\n"
        "[acknowledgements]\nmax_per_sender_per_hour = 100\n"
        '[logging]\nlevel = "info"\nformat = "json"\n',
        encoding="utf-8",
    )
    log = (tmp_path / "intaked.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "intaked", "run", "--config", str(config)],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    admin = create_engine(pg_url, connect_args={"application_name": "intaked-test-admin"})
    stop = threading.Event()
    try:
        wait_until(lambda: _listening(port) or proc.poll() is not None, timeout=30, what="SMTP")
        assert proc.poll() is None, "the daemon exited"
        accepted: list[int] = []
        sender = threading.Thread(target=send_all, args=(port, accepted, stop), daemon=True)
        sender.start()
        cut = 0
        for _ in range(CUTS):
            time.sleep(0.4)
            with admin.connect() as conn:
                cut += len(
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :name"
                        ),
                        {"name": name},
                    ).all()
                )
        assert cut >= CUTS, "the daemon's connections were cut"
        sender.join(60)
        assert sorted(accepted) == list(range(MAILS)), "every mail answered 250 in the end"
        settled_by = time.monotonic() + 15  # 15 s after the last cut, or the last 250 if later

        def done() -> bool:
            with admin.connect() as conn:
                tickets = conn.execute(select(func.count()).select_from(ticket_table)).scalar_one()
                waiting = conn.execute(
                    select(func.count())
                    .select_from(inbound_item_table)
                    .where(inbound_item_table.c.state.in_(["received", "processing"]))
                ).scalar_one()
                unsent = conn.execute(
                    select(func.count()).select_from(outbox_table).where(outbox_table.c.state != "sent")
                ).scalar_one()
            return tickets == MAILS and waiting == 0 and unsent == 0 and len(sink.messages()) >= MAILS

        wait_until(done, timeout=max(1.0, settled_by - time.monotonic()), what="every ticket and ack")
        time.sleep(1.0)  # a repeated acknowledgement would arrive now
        acks = [m.message["In-Reply-To"] for m in sink.messages()]
        assert len(acks) == MAILS and len(set(acks)) == MAILS, "one acknowledgement per report, none twice"
    finally:
        stop.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        admin.dispose()
        sink.stop()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0
