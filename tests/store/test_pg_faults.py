"""PostgreSQL cuts the daemon's connections again and again (``pg_terminate_backend``, as a
failover or an administrator would) during a burst of mail: every report becomes one ticket and
gets one acknowledgement, all within seconds of the last cut, and no mail is sent twice
(issue 13, points 1 and 2)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.support.dovecot import free_port
from tests.support.processes import DaemonProcess, backlog, cut_connections, send_patiently
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


@pytest.mark.slow
def test_cut_connections_lose_and_repeat_nothing(pg_url: str, tmp_path: Path) -> None:
    name = f"intaked-cut-{uuid.uuid4().hex[:8]}"
    port = free_port()
    sink = SmtpSink().start()
    config = tmp_path / "intaked.toml"
    config.write_text(
        f'[database]\nurl = "{pg_url}&application_name={name}"\n'
        f'[metrics]\nlisten = ""\n[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\nfrom_address = "helpdesk@example.com"\n'
        "[outbox]\npoll_seconds = 0.5\nretry_base_seconds = 0.5\nretry_max_seconds = 2\n"
        "[intake]\nmax_attempts = 100\nretry_base_seconds = 0.2\n"
        "[acknowledgements]\nmax_per_sender_per_hour = 100\n"
        '[logging]\nlevel = "info"\nformat = "json"\n',
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, tmp_path / "intaked.log")
    admin = create_engine(pg_url, connect_args={"application_name": "intaked-test-admin"})
    try:
        daemon.wait_started()
        accepted: list[int] = []
        sender = send_patiently(port, MAILS, report, accepted)
        cut = 0
        for _ in range(CUTS * 4):  # a loaded machine reconnects more slowly: cut until CUTS landed
            time.sleep(0.4)
            cut += cut_connections(admin, name)
            if cut >= CUTS:
                break
        assert cut >= CUTS, "the daemon's connections were cut"
        sender.join(90)
        assert sorted(accepted) == list(range(MAILS)), "every mail answered 250 in the end"
        settled_by = time.monotonic() + 15  # 15 s after the last cut, or the last 250 if later
        wait_until(
            lambda: backlog(admin) == (MAILS, 0, 0) and len(sink.messages()) >= MAILS,
            timeout=max(1.0, settled_by - time.monotonic()),
            what="every ticket and acknowledgement",
        )
        time.sleep(1.0)  # a repeated acknowledgement would arrive now
        acks = [m.message["In-Reply-To"] for m in sink.messages()]
        assert len(acks) == MAILS and len(set(acks)) == MAILS, "one acknowledgement per report, none twice"
    finally:
        daemon.stop()
        admin.dispose()
        sink.stop()
