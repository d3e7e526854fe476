"""The backup docs/operations.md gives for the embedded database: SQLite's ``VACUUM INTO`` taken
while the daemon runs and takes mail is a consistent database another daemon starts on, with
every ticket and every message's exact raw bytes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from intaked.store.models import inbound_item_table, ticket_table
from intaked.store.rawbytes import decompress_raw
from tests.channels.test_smtp_intake import big5_report, send
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

MAILS = 20


def report(n: int) -> bytes:
    return big5_report().replace(b"big5-report-1@", f"backup-{n}@".encode())


def tickets_in(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ticket_table)).scalar_one())


def raw_mail_in(engine: Engine) -> set[bytes]:
    with engine.connect() as conn:
        rows = conn.execute(select(inbound_item_table.c.raw, inbound_item_table.c.raw_encoding)).all()
    return {decompress_raw(row.raw, row.raw_encoding) for row in rows}


def test_a_backup_taken_while_mail_arrives_restores_every_ticket_and_its_raw_bytes(
    sqlite_url: str, tmp_path: Path
) -> None:
    inline = {"back_office": "inline"}
    daemon = DaemonThread(make_settings(sqlite_url, daemon=inline)).start()
    backup = tmp_path / "backup.db"
    try:
        for n in range(MAILS):
            send(daemon.smtp_port, report(n))
        wait_until(lambda: tickets_in(daemon.engine) == MAILS, what="every mail a ticket")
        live = sqlite3.connect(str(make_url(sqlite_url).database))
        try:
            send(daemon.smtp_port, report(MAILS))  # written while the backup is taken, or not
            live.execute("VACUUM INTO ?", (str(backup),))
        finally:
            live.close()
        sent = raw_mail_in(daemon.engine)
    finally:
        daemon.stop()
    assert {report(n) for n in range(MAILS)} <= sent, "the ledger keeps the bytes as sent"
    restored = DaemonThread(make_settings(f"sqlite:///{backup}", daemon=inline)).start()
    try:
        assert {report(n) for n in range(MAILS)} <= raw_mail_in(restored.engine)
        wait_until(lambda: tickets_in(restored.engine) >= MAILS, what="the restored tickets")
        send(restored.smtp_port, report(MAILS + 1))
        wait_until(lambda: tickets_in(restored.engine) >= MAILS + 1, what="new mail on the restored database")
    finally:
        restored.stop()
