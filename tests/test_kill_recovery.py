"""``kill -9`` of a whole daemon while its back office holds claimed mail: another daemon on the
same database files that mail and acknowledges it once, within seconds, without waiting for any
claim timeout (issue 13, point 1; several nodes, issue 17)."""

from __future__ import annotations

import contextlib
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select

from intaked.store.models import inbound_item_table, ticket_table, worker_table
from tests.support.dovecot import free_port
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until

MAILS = 5


def children(pid: int) -> list[int]:
    """Every thread's children (a process started from a worker thread is listed under it)."""
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in listing.read_text(encoding="ascii").split()]
    return found


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            return raw.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Node:
    """One ``intaked run`` with a node name of its own, in its own process group."""

    def __init__(self, tmp_path: Path, name: str, db_url: str, sink: SmtpSink) -> None:
        self.name = name
        self.port = free_port()
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'[database]\nurl = "{db_url}"\nsqlite_busy_timeout_ms = 5000\n'
            f'[daemon]\nnode_name = "{name}"\n'
            f'[smtp_intake]\nlisten = "127.0.0.1:{self.port}"\n'
            f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\n'
            'from_address = "helpdesk@example.com"\n'
            "[outbox]\npoll_seconds = 0.5\n"
            '[logging]\nlevel = "info"\nformat = "json"\n',
            encoding="utf-8",
        )
        self.log_path = tmp_path / f"{name}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "intaked", "run", "--config", str(config)],
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )

    def ready(self) -> bool:
        return b'"event": "started"' in self.log_path.read_bytes()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.close()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink().start()
    yield server
    server.stop()


def report(n: int) -> bytes:
    return (
        f"From: op{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: 產線 {n} 停工\r\n"
        f"Message-ID: <kill-{n}@example.com>\r\n\r\nMES 無回應\r\n"
    ).encode()


def freeze_parsing(node: Node, engine: Engine) -> int:
    """Stop the node's parse workers, send it mail, and wait until its back office holds it
    (claimed, waiting for the frozen parser); returns the back office's pid."""
    intake = [p for p in descendants(node.proc.pid) if "intaked.backoffice intake" in cmdline(p)]
    assert len(intake) == 1
    parsers = [p for p in descendants(intake[0]) if "intaked.backoffice" not in cmdline(p)]
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
    return intake[0]


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
        wait_until(node.ready, timeout=30, what="the daemon up")
        intake = freeze_parsing(node, engine)
        if victim == "back office":
            os.kill(intake, signal.SIGKILL)  # its parse workers and outbox sender die with it
        else:
            node.kill()
            node.log.close()
            node = Node(tmp_path, "node-a", sqlite_url, sink)
        filed_and_acknowledged_once(engine, sink, within=15)
        if victim == "back office":
            assert b'"event": "back_office_died"' in node.log_path.read_bytes()
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
        wait_until(lambda: first.ready() and second.ready(), timeout=30, what="both daemons up")
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
        first.stop() if first.proc.poll() is None else first.log.close()
        second.stop()
        engine.dispose()
