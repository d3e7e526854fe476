"""The outbox across processes: kill -9 before the send, and two dispatchers sharing PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import signal
import smtplib
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, select

from intaked.outbound.outbox import enqueue
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import outbox_table, ticket_table
from tests.channels.test_smtp_intake import big5_report
from tests.support.dovecot import free_port
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def test_kill_9_between_commit_and_send_the_ack_goes_out_after_restart(db_url: str, tmp_path: Path) -> None:
    sink = SmtpSink()  # down while the first daemon runs: the ack stays queued
    smtp_port = free_port()
    config = tmp_path / "intaked.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[metrics]\nlisten = ""\n'
        f'[smtp_intake]\nlisten = "127.0.0.1:{smtp_port}"\n'
        f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\nfrom_address = "helpdesk@example.com"\n'
        '[outbox]\nretry_base_seconds = 0.2\npoll_seconds = 0.2\n[logging]\nformat = "json"\n'
    )
    log = (tmp_path / "log").open("ab")
    command = [sys.executable, "-m", "intaked", "run", "--config", str(config)]
    first = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
    engine = create_engine(db_url)
    try:
        wait_until(lambda: _listening(smtp_port), what="the first daemon")
        with smtplib.SMTP("127.0.0.1", smtp_port) as client:
            client.sendmail("ming.wang@example.com", ["helpdesk@example.com"], big5_report())
        wait_until(lambda: _outbox(engine) and _outbox(engine)[0].attempts >= 1, what="a failed send attempt")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
        assert sink.messages() == [] and _outbox(engine)[0].state in ("pending", "sending")
        sink.start()
        second = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        try:
            wait_until(sink.messages, timeout=30, what="the ack sent by the restarted daemon")
            wait_until(lambda: _outbox(engine)[0].state == "sent", what="marked sent")
            (received,) = sink.messages()
            with engine.connect() as conn:
                number = conn.execute(select(ticket_table.c.number)).scalar_one()
            assert received.message["Subject"].startswith(f"[{number}]")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    finally:
        engine.dispose()
        log.close()
        sink.stop()
        if first.poll() is None:
            first.kill()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _outbox(engine: object) -> list[object]:
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:  # type: ignore[attr-defined]
            return list(conn.execute(select(outbox_table).order_by(outbox_table.c.id)).all())
    except DBAPIError:
        return []


DISPATCHER = textwrap.dedent(
    """
    import sys
    from intaked.config import settings_from_mapping
    from intaked.outbound.dispatcher import dispatch_once
    from intaked.store.engine import make_engine
    url, port = sys.argv[1], int(sys.argv[2])
    settings = settings_from_mapping({"database": {"url": url},
        "outbound_mail": {"host": "127.0.0.1", "port": port, "from_address": "helpdesk@example.com"},
        "outbox": {"batch_size": 7}}, environ={})
    engine = make_engine(url)
    while dispatch_once(engine, settings):
        pass
    """
)


def test_two_dispatcher_processes_send_every_row_once(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    rows = [
        {
            "kind": "mail",
            "purpose": "ack",
            "idempotency_key": f"ack:load:{n}",
            "ticket_id": None,
            "recipient": f"user{n}@example.com",
            "payload": {
                "from": "helpdesk@example.com",
                "to": f"user{n}@example.com",
                "subject": f"[IT-202611-{n:05d}] test",
                "text": "ok",
                "html": None,
                "message_id": f"load-{n}@example.com",
                "in_reply_to": None,
                "references": [],
            },
        }
        for n in range(300)
    ]
    with engine.begin() as conn:
        assert enqueue(conn, rows, dt.datetime.now(dt.UTC)) == 300
        assert enqueue(conn, rows[:10], dt.datetime.now(dt.UTC)) == 0, "the idempotency key holds"
    sink = SmtpSink().start()
    try:
        procs = [
            subprocess.Popen([sys.executable, "-c", DISPATCHER, pg_url, str(sink.port)], cwd=REPO)
            for _ in range(2)
        ]
        for proc in procs:
            assert proc.wait(120) == 0
        ids = Counter(r.message["Message-ID"] for r in sink.messages())
        assert len(ids) == 300 and set(ids.values()) == {1}, "every row sent, none twice"
        with engine.connect() as conn:
            states = Counter(r.state for r in conn.execute(select(outbox_table.c.state)))
        assert states == {"sent": 300}
    finally:
        sink.stop()
        engine.dispose()
