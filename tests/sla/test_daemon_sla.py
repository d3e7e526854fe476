"""The daemon keeps deadlines current by itself: new tickets, another process writing
``tickets.priority``, and the auto-close sweep on its APScheduler interval (two daemons on
PostgreSQL close each ticket once)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from typing import Any

from sqlalchemy import select, text, update

from intaked.store.models import ticket_event_table, ticket_table
from tests.channels.test_smtp_intake import big5_report, send
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

FAST = {"sla": {"check_seconds": 0.2}, "lifecycle": {"sweep_interval": "1s"}}


def ticket(daemon: DaemonThread) -> Any:
    with daemon.engine.connect() as conn:
        return conn.execute(select(ticket_table)).mappings().first()


def test_the_daemon_notices_a_priority_written_by_another_process(db_url: str) -> None:
    daemon = DaemonThread(make_settings(db_url, **FAST)).start()
    try:
        send(daemon.smtp_port, big5_report())
        wait_until(
            lambda: (t := ticket(daemon)) is not None and t["triage_due_at"] is not None, what="triage due"
        )
        t = ticket(daemon)
        assert t["triage_due_at"] - t["created_at"] == dt.timedelta(minutes=15)
        script = (
            "import sys; from sqlalchemy import create_engine, text\n"
            "e = create_engine(sys.argv[1])\n"
            "with e.begin() as c: c.execute(text(\"UPDATE tickets SET priority = 'P2'\"))\n"
        )
        subprocess.run(
            [sys.executable, "-c", script, str(daemon.engine.url.render_as_string(False))], check=True
        )
        wait_until(lambda: ticket(daemon)["response_due_at"] is not None, timeout=10, what="deadlines")
        t = ticket(daemon)
        assert t["response_due_at"] - t["created_at"] == dt.timedelta(hours=1), "P2: 1 hour, 24x7"
        assert t["sla_priority"] == "P2"
    finally:
        daemon.stop()


def _resolved_long_ago(daemon: DaemonThread, count: int) -> None:
    for n in range(count):
        send(daemon.smtp_port, big5_report().replace(b"Message-ID: <", f"Message-ID: <sweep{n}-".encode()))
    wait_until(lambda: daemon.ticket_count() == count, what="tickets")
    with daemon.engine.begin() as conn:
        conn.execute(
            update(ticket_table).values(
                status="resolved",
                resolved_at=dt.datetime(2026, 1, 5, 9, tzinfo=dt.UTC),
                sla_status="resolved",
                auto_close_at=dt.datetime(2026, 1, 8, 9, tzinfo=dt.UTC),
            )
        )


def test_the_sweeper_closes_due_tickets_on_its_interval(db_url: str) -> None:
    daemon = DaemonThread(make_settings(db_url, **FAST)).start()
    try:
        _resolved_long_ago(daemon, 2)
        wait_until(lambda: ticket(daemon)["status"] == "closed", timeout=15, what="auto-close")
    finally:
        daemon.stop()


def test_two_daemons_on_postgresql_close_each_ticket_once(pg_url: str) -> None:
    first = DaemonThread(make_settings(pg_url, **FAST)).start()
    second = DaemonThread(make_settings(pg_url, **FAST)).start()
    try:
        _resolved_long_ago(first, 6)

        def all_closed() -> bool:
            with first.engine.connect() as conn:
                return not conn.execute(text("SELECT 1 FROM tickets WHERE status <> 'closed'")).first()

        wait_until(all_closed, timeout=20, what="every ticket closed")
        with first.engine.connect() as conn:
            kinds = conn.execute(select(ticket_event_table.c.kind)).scalars().all()
        assert kinds.count("auto_closed") == 6, "one auto-close per ticket, whichever daemon swept"
    finally:
        first.stop()
        second.stop()
