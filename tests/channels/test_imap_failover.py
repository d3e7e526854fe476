"""Failover of an IMAP mailbox between two real daemons (``intaked run`` processes, nodes) on one
PostgreSQL database, against a real Dovecot: the node holding the mailbox's lease is frozen with
SIGSTOP, the other takes the lease over within 30 s and drains the mail; the frozen node, once
continued, stores and moves nothing (fencing) and stops pulling."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from intaked.store.engine import make_engine
from intaked.store.leases import lease_of
from intaked.store.models import inbound_item_table, ticket_table
from tests.channels.test_imap import report
from tests.support.dovecot import PASSWORD, USER, Dovecot, dovecot_unavailable_reason
from tests.support.processes import DaemonProcess
from tests.support.waiting import wait_until
from tests.support.workers import free_port

TAKE_OVER_SECONDS = 30  # what intaked promises for a dead or frozen holder


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if reason := dovecot_unavailable_reason():
        pytest.skip(reason)
    with Dovecot() as server:
        yield server


@pytest.fixture
def store(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def start_node(tmp_path: Path, node: str, pg_url: str, dovecot: Dovecot) -> DaemonProcess:
    """``intaked run`` as node ``node``: the back office inline (one process per node, frozen
    whole), its connections named after it; the mailbox as every node has it."""
    config = tmp_path / f"{node}.toml"
    config.write_text(
        f'[database]\nurl = "{pg_url}&application_name={node}"\n'
        f'[daemon]\nnode_name = "{node}"\nback_office = "inline"\n'
        "heartbeat_seconds = 0.5\nlease_seconds = 2.0\n"
        f'[smtp_intake]\nlisten = "127.0.0.1:{free_port()}"\n'
        "[intake]\nparse_workers = 0\n"
        "[acknowledgements]\nenabled = false\n"
        '[metrics]\nlisten = ""\n'
        '[logging]\nlevel = "info"\nformat = "json"\n'
        f'[[imap]]\nname = "helpdesk"\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
        f'username = "{USER}"\npassword = "{PASSWORD}"\npoll_seconds = 1.0\nreconnect_max_seconds = 1.0\n'
        "lease_seconds = 6.0\n",
        encoding="utf-8",
    )
    process = DaemonProcess(config, tmp_path / f"{node}.log")
    process.wait_started(timeout=60)
    return process


def holder(store: Engine) -> str:
    lease = lease_of(store, "helpdesk")
    return (lease.holder if lease is not None else None) or ""


def tickets(store: Engine) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ticket_table)).scalar_one())


def ledger(store: Engine) -> list[str]:
    with store.connect() as conn:
        return sorted(str(r.source_ref) for r in conn.execute(select(inbound_item_table.c.source_ref)))


def named(node: DaemonProcess, event: str) -> list[dict[str, Any]]:
    return [e for e in node.events() if e.get("event") == event]


def inserts_waiting(store: Engine, node: str) -> bool:
    """A connection of ``node`` waits for a lock in an INSERT into the ledger."""
    with store.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :node "
                    "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO inbound_items%'"
                ),
                {"node": node},
            ).scalar_one()
        )


@contextlib.contextmanager
def two_nodes(tmp_path: Path, pg_url: str, dovecot: Dovecot, store: Engine) -> Iterator[list[DaemonProcess]]:
    """node-a, holding the mailbox's lease, and node-b, waiting for it; both stopped at the end
    (continued first, should a test have left one frozen)."""
    nodes: list[DaemonProcess] = []
    try:
        nodes.append(start_node(tmp_path, "node-a", pg_url, dovecot))
        wait_until(lambda: holder(store).startswith("node-a:"), what="node-a holds the lease")
        nodes.append(start_node(tmp_path, "node-b", pg_url, dovecot))
        wait_until(lambda: named(nodes[1], "imap_lease_held_elsewhere"), what="node-b waits for it")
        yield nodes
    finally:
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGCONT)
            node.stop()


def test_a_frozen_holder_is_taken_over_and_pulls_nothing_once_continued(
    tmp_path: Path, pg_url: str, dovecot: Dovecot, store: Engine
) -> None:
    with two_nodes(tmp_path, pg_url, dovecot, store) as (a, b):
        dovecot.append([report(1)])
        wait_until(lambda: tickets(store) == 1 and dovecot.count("INBOX") == 0, what="node-a files it")
        os.killpg(a.pid, signal.SIGSTOP)
        wait_until(
            lambda: holder(store).startswith("node-b:"), timeout=TAKE_OVER_SECONDS, what="node-b takes over"
        )
        dovecot.append([report(2), report(3)])
        wait_until(lambda: tickets(store) == 3 and dovecot.count("INBOX") == 0, what="node-b drains new mail")
        os.killpg(a.pid, signal.SIGCONT)
        wait_until(lambda: named(a, "imap_lease_lost"), what="node-a finds its lease taken over")
        dovecot.append([report(4)])
        wait_until(lambda: tickets(store) == 4 and dovecot.count("INBOX") == 0, what="node-b goes on")
        assert len(ledger(store)) == 4 and dovecot.count("Processed") == 4
        assert sum(e["count"] for e in named(a, "imap_captured")) == 1, "node-a: only before it froze"
        assert sum(e["count"] for e in named(b, "imap_captured")) == 3
        b_holder = holder(store)
        assert named(a, "imap_lease_lost")[0]["new_holder"] == b_holder
        assert named(a, "imap_lease_held_elsewhere")[-1]["by"] == b_holder


def test_mail_fetched_by_a_holder_frozen_mid_capture_is_stored_once_by_the_node_that_took_over(
    tmp_path: Path, pg_url: str, dovecot: Dovecot, store: Engine
) -> None:
    """node-a is frozen between fetching a message and committing it (its INSERT had waited on a
    lock the test held, and went through once the test let go). node-b takes the lease over and
    fetches the same message; its INSERT waits for node-a's open transaction. Continued, node-a
    finds node-b's fence in its capture transaction, rolls back and moves nothing; node-b stores
    the message and moves it."""
    with two_nodes(tmp_path, pg_url, dovecot, store) as (a, b):
        with store.connect() as blocker:
            blocker.execute(text("LOCK TABLE inbound_items IN SHARE MODE"))  # the ledger's inserts wait
            dovecot.append([report(1)])
            wait_until(lambda: inserts_waiting(store, "node-a"), what="node-a's INSERT waiting")
            os.killpg(a.pid, signal.SIGSTOP)
            blocker.rollback()  # node-a's INSERT goes through; its transaction stays open, frozen
        wait_until(
            lambda: holder(store).startswith("node-b:"), timeout=TAKE_OVER_SECONDS, what="node-b takes over"
        )
        wait_until(lambda: inserts_waiting(store, "node-b"), what="node-b storing the same message")
        assert dovecot.count("INBOX") == 1 and ledger(store) == []
        os.killpg(a.pid, signal.SIGCONT)
        wait_until(lambda: tickets(store) == 1 and dovecot.count("INBOX") == 0, what="node-b files it")
        assert len(ledger(store)) == 1 and dovecot.count("Processed") == 1
        wait_until(lambda: named(a, "imap_lease_lost"), what="node-a's capture refused")
        (lost,) = named(a, "imap_lease_lost")
        assert lost["not_stored"] == 1 and lost["new_holder"] == holder(store)
        assert not named(a, "imap_captured"), "node-a stored nothing"
        assert [e["count"] for e in named(b, "imap_captured")] == [1]
        dovecot.append([report(2)])
        wait_until(lambda: tickets(store) == 2 and dovecot.count("INBOX") == 0, what="node-b goes on")
        assert not named(a, "imap_captured") and len(named(a, "imap_connected")) == 1
