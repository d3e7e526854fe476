"""``kill -9`` of a whole daemon while its back office holds claimed mail: another daemon on the
same database files that mail and acknowledges it once, within seconds, without waiting for any
claim timeout (issue 13, point 1; several nodes, issue 17)."""

from __future__ import annotations

import os
import signal
import smtplib
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select

from intaked.store.models import inbound_item_table, ticket_table, worker_table
from tests.support.dovecot import free_port
from tests.support.processes import DaemonProcess, cmdline, descendants
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

MAILS = 5


class Node(DaemonProcess):
    """One ``intaked run`` with a node name of its own."""

    def __init__(self, tmp_path: Path, name: str, db_url: str, sink: SmtpSink) -> None:
        self.name = name
        self.port = free_port()
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'[database]\nurl = "{db_url}"\nsqlite_busy_timeout_ms = 5000\n'
            f'[daemon]\nnode_name = "{name}"\n'
            f'[metrics]\nlisten = ""\n[smtp_intake]\nlisten = "127.0.0.1:{self.port}"\n'
            f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\n'
            'from_address = "helpdesk@example.com"\n'
            "[outbox]\npoll_seconds = 0.5\n"
            '[logging]\nlevel = "info"\nformat = "json"\n',
            encoding="utf-8",
        )
        super().__init__(config, tmp_path / f"{name}.log")


def report(n: int) -> bytes:
    return (
        f"From: op{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: 產線 {n} 停工\r\n"
        f"Message-ID: <kill-{n}@example.com>\r\n\r\nMES 無回應\r\n"
    ).encode()


def freeze_parsing(node: Node, engine: Engine) -> int:
    """Stop the node's parse workers, send it mail, and wait until its back office holds it
    (claimed, waiting for the frozen parser); returns the back office's pid."""
    node.wait_back_office_ready()
    intake = node.child("intake")
    parsers = [p for p in descendants(intake) if "intaked.backoffice" not in cmdline(p)]
    assert parsers, "the parse workers run beside the back office"
    for pid in parsers:
        os.kill(pid, signal.SIGSTOP)
    for n in range(MAILS):
        with smtplib.SMTP("127.0.0.1", node.port, timeout=10) as client:
            client.sendmail(f"op{n}@example.com", ["helpdesk@example.com"], report(n))

    def held() -> list[Any]:
        with engine.connect() as conn:
            return list(
                conn.execute(
                    select(inbound_item_table.c.id).where(
                        inbound_item_table.c.state == "processing",
                        inbound_item_table.c.claimed_by.like(f"{node.name}:%"),
                    )
                )
            )

    wait_until(held, timeout=10, what=f"{node.name}'s back office holding the mail")
    return intake


def filed_and_acknowledged_once(engine: Engine, sink: SmtpSink, within: float) -> None:
    def filed() -> bool:
        with engine.connect() as conn:
            tickets = len(conn.execute(select(ticket_table.c.id)).all())
        return tickets == MAILS and len(sink.messages()) >= MAILS

    wait_until(filed, timeout=within, what="the held mail filed and acknowledged")
    time.sleep(1.0)  # a doubled acknowledgement would arrive now
    with engine.connect() as conn:
        assert {r.state for r in conn.execute(select(inbound_item_table.c.state))} == {"done"}
        assert len(conn.execute(select(ticket_table.c.id)).all()) == MAILS
    acks = [m.message["In-Reply-To"] for m in sink.messages()]
    assert len(acks) == MAILS and len(set(acks)) == MAILS, "each report acknowledged once"


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["back office", "whole daemon"])
def test_kill_9_while_the_back_office_holds_mail_loses_and_doubles_nothing(
    sqlite_url: str, tmp_path: Path, sink: SmtpSink, victim: str
) -> None:
    """The back office is killed (its parent restarts it), or the whole daemon is (systemd
    restarts it): what the dead process held is filed once, within seconds of the restart."""
    node = Node(tmp_path, "node-a", sqlite_url, sink)
    engine = create_engine(sqlite_url)
    try:
        node.wait_started()
        intake = freeze_parsing(node, engine)
        if victim == "back office":
            os.kill(intake, signal.SIGKILL)  # its parse workers and outbox sender die with it
        else:
            node.kill()
            node = Node(tmp_path, "node-a", sqlite_url, sink)
        filed_and_acknowledged_once(engine, sink, within=15)
        if victim == "back office":
            assert b'"event": "back_office_died"' in node.log_text()
    finally:
        node.stop()
        engine.dispose()


@pytest.mark.slow
def test_a_killed_daemon_s_claimed_mail_is_filed_by_the_other_daemon(
    db_url: str, tmp_path: Path, sink: SmtpSink
) -> None:
    first, second = Node(tmp_path, "node-a", db_url, sink), Node(tmp_path, "node-b", db_url, sink)
    engine = create_engine(db_url)
    try:
        first.wait_started()
        second.wait_started()
        freeze_parsing(first, engine)
        first.kill()  # with its back office, outbox sender and frozen parse workers
        filed_and_acknowledged_once(engine, sink, within=15)
        with engine.connect() as conn:
            gone = conn.execute(
                select(worker_table.c.role).where(
                    worker_table.c.node == "node-a", worker_table.c.state == "gone"
                )
            ).all()
        assert {role for (role,) in gone} >= {"back_office.intake"}, "node-b saw node-a's workers gone"
    finally:
        first.stop()
        second.stop()
        engine.dispose()
