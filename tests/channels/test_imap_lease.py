"""Mailbox leases with the IMAP worker against a real Dovecot (intaked/channels/imaplease.py): two
workers, or two daemons, given the same mailbox pull it one at a time and store each message
once; a worker that stops hands the mailbox over at once; a worker whose lease was taken over
stops pulling; one whose capture transaction finds another holder's fence stores and moves
nothing of what it fetched; and ``intaked imap status`` names the holder and the end of its lease."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, select, text
from structlog.testing import LogCapture

from intaked.channels.imap import ImapMailboxWorker
from intaked.channels.imaplease import MailboxLease
from intaked.cli import main
from intaked.config import ImapMailboxSettings, settings_from_mapping
from intaked.store.engine import make_engine
from intaked.store.leases import LeaseLost, lease_of, release, take_or_renew
from intaked.store.migrate import upgrade
from intaked.store.models import inbound_item_table
from intaked.store.types import utcnow
from tests.channels.test_imap import imap, report
from tests.support.daemon import DaemonThread, make_settings
from tests.support.dovecot import Dovecot, dovecot_unavailable_reason
from tests.support.waiting import wait_until

LEASE_SECONDS = 3.0  # renewed every second; a waiting worker looks every second


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if reason := dovecot_unavailable_reason():
        pytest.skip(reason)
    with Dovecot() as server:
        yield server


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event of this process while the test runs, info and up."""
    capture = LogCapture()
    saved = structlog.get_config()
    structlog.configure(
        processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(logging.INFO)
    )
    try:
        yield capture.entries
    finally:
        structlog.configure(**saved)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    store = make_engine(db_url)
    upgrade(store)
    yield store
    store.dispose()


def mailbox(server: Dovecot, **overrides: Any) -> ImapMailboxSettings:
    values = imap(server, lease_seconds=LEASE_SECONDS, **overrides)
    return settings_from_mapping({"imap": [values]}, environ={}).imap[0]


def worker(server: Dovecot, engine: Engine, holder: str) -> ImapMailboxWorker:
    pulling = ImapMailboxWorker(mailbox(server), engine, holder=holder)
    pulling.start()
    return pulling


def ledger(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(str(r.source_ref) for r in conn.execute(select(inbound_item_table.c.source_ref)))


def named(events: list[dict[str, Any]], name: str, holder: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == name and (holder is None or e.get("holder") == holder)]


def holder_of(engine: Engine) -> str | None:
    lease = lease_of(engine, "helpdesk")
    return lease.holder if lease is not None else None


def test_two_workers_on_one_mailbox_only_the_lease_holder_pulls(
    engine: Engine, dovecot: Dovecot, events: list[dict[str, Any]]
) -> None:
    workers = [worker(dovecot, engine, "node-a:1:aaaa"), worker(dovecot, engine, "node-b:2:bbbb")]
    try:
        wait_until(lambda: holder_of(engine) is not None, what="one worker takes the lease")
        dovecot.append([report(n) for n in range(3)])
        wait_until(lambda: len(ledger(engine)) == 3 and dovecot.count("INBOX") == 0, what="first mail")
        time.sleep(2 * LEASE_SECONDS)  # several renewals, and the other worker looking each second
        dovecot.append([report(n) for n in range(3, 6)])
        wait_until(lambda: len(ledger(engine)) == 6 and dovecot.count("INBOX") == 0, what="more mail")
    finally:
        for each in workers:
            each.stop.set()  # both at once: the waiting one must not take the lease given back
        for each in workers:
            each.join(30)
    assert len(set(ledger(engine))) == 6 and dovecot.count("Processed") == 6
    (taken,) = named(events, "imap_lease_taken")
    holder = taken["holder"]
    other = ({"node-a:1:aaaa", "node-b:2:bbbb"} - {holder}).pop()
    assert taken["fence"] == 1
    assert [e["holder"] for e in named(events, "imap_connected")] == [holder], "one connection, one node"
    assert sum(e["count"] for e in named(events, "imap_captured", holder)) == 6
    assert not named(events, "imap_captured", other)
    (waiting,) = named(events, "imap_lease_held_elsewhere", other)  # logged once, however often it looked
    assert waiting["by"] == holder
    released = lease_of(engine, "helpdesk")
    assert released is not None and released.holder is None and released.fence == 1, (
        "given back, never taken over"
    )


def test_a_worker_that_stops_hands_the_mailbox_over_at_once(
    engine: Engine, dovecot: Dovecot, events: list[dict[str, Any]]
) -> None:
    first = worker(dovecot, engine, "node-a:1:aaaa")
    wait_until(lambda: holder_of(engine) == "node-a:1:aaaa", what="the first worker holds the lease")
    second = worker(dovecot, engine, "node-b:2:bbbb")
    try:
        wait_until(
            lambda: named(events, "imap_lease_held_elsewhere", "node-b:2:bbbb"), what="the second waits"
        )
        first.join(30)  # a clean stop gives the lease back
        dovecot.append([report(1)])
        wait_until(lambda: ledger(engine) and dovecot.count("INBOX") == 0, what="the second worker drains")
        lease = lease_of(engine, "helpdesk")
        assert lease is not None and (lease.holder, lease.fence) == ("node-b:2:bbbb", 2)
    finally:
        second.join(30)
    assert named(events, "imap_lease_released", "node-a:1:aaaa")
    assert [e["holder"] for e in named(events, "imap_captured")] == ["node-b:2:bbbb"]


def test_a_worker_whose_lease_was_taken_over_stops_pulling(
    engine: Engine, dovecot: Dovecot, events: list[dict[str, Any]]
) -> None:
    pulling = worker(dovecot, engine, "node-a:1:aaaa")
    try:
        wait_until(lambda: holder_of(engine) == "node-a:1:aaaa", what="the worker holds the lease")
        wait_until(lambda: named(events, "imap_connected"), what="connected")
        # Another node takes the mailbox over, as after this one was stopped past its lease.
        later = utcnow() + dt.timedelta(seconds=2 * LEASE_SECONDS)
        assert take_or_renew(engine, "helpdesk", "node-z:9:zzzz", 600, later) == 2
        wait_until(lambda: named(events, "imap_lease_lost"), what="the loss noticed while idling")
        dovecot.append([report(1)])
        time.sleep(2 * LEASE_SECONDS)
        assert ledger(engine) == [] and dovecot.count("INBOX") == 1, "it pulls nothing without the lease"
        (waiting,) = named(events, "imap_lease_held_elsewhere")
        assert waiting["by"] == "node-z:9:zzzz"
        assert release(engine, "helpdesk", "node-z:9:zzzz")
        wait_until(lambda: len(ledger(engine)) == 1 and dovecot.count("INBOX") == 0, what="pulling again")
        lease = lease_of(engine, "helpdesk")
        assert lease is not None and (lease.holder, lease.fence) == ("node-a:1:aaaa", 3)
    finally:
        pulling.join(30)


def inserts_waiting(admin: Engine, application_name: str) -> bool:
    """A connection named ``application_name`` waits for a lock in an INSERT into the ledger."""
    with admin.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                    "AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO inbound_items%'"
                ),
                {"name": application_name},
            ).scalar_one()
        )


def test_fetched_mail_is_neither_stored_nor_moved_once_another_took_the_lease(
    pg_url: str, dovecot: Dovecot, events: list[dict[str, Any]]
) -> None:
    """PostgreSQL: the worker's INSERT waits on a lock the test holds; meanwhile another node
    takes the lease over. The worker's capture transaction then finds another fence: it rolls
    back and the message stays in the inbox."""
    name = f"lease-{threading.get_ident()}"
    engine = make_engine(f"{pg_url}&application_name={name}")
    admin = make_engine(pg_url)
    upgrade(engine)
    pulling = worker(dovecot, engine, "node-a:1:aaaa")
    try:
        wait_until(lambda: named(events, "imap_connected"), what="connected")
        with admin.connect() as blocker:
            blocker.execute(text("LOCK TABLE inbound_items IN SHARE MODE"))  # inserts wait
            dovecot.append([report(1)])
            wait_until(lambda: inserts_waiting(admin, name), what="the worker's INSERT waiting")
            later = utcnow() + dt.timedelta(seconds=2 * LEASE_SECONDS)
            assert take_or_renew(admin, "helpdesk", "node-b:2:bbbb", 600, later) == 2
            blocker.rollback()
        wait_until(lambda: named(events, "imap_lease_lost"), what="the capture refused")
        (lost,) = named(events, "imap_lease_lost")
        assert (lost["fence"], lost["new_holder"], lost["new_fence"], lost["not_stored"]) == (
            1,
            "node-b:2:bbbb",
            2,
            1,
        )
        assert not named(events, "imap_captured")
        assert ledger(engine) == []
        assert dovecot.count("INBOX") == 1 and dovecot.count("Processed") == 0, "nothing moved"
    finally:
        pulling.join(30)
        engine.dispose()
        admin.dispose()


def test_two_daemons_given_the_same_mailbox_file_each_mail_once(
    pg_url: str, dovecot: Dovecot, events: list[dict[str, Any]]
) -> None:
    """Two whole daemons (nodes) on one PostgreSQL database with the same mailbox: one ticket per
    mail, all of them pulled by one node."""
    daemons = [
        DaemonThread(
            make_settings(
                pg_url, imap=[imap(dovecot, lease_seconds=LEASE_SECONDS)], daemon={"node_name": node}
            )
        ).start()
        for node in ("node-a", "node-b")
    ]
    try:
        dovecot.append([report(n) for n in range(4)])
        wait_until(
            lambda: daemons[0].ticket_count() == 4 and daemons[0].pending_items() == 0, what="four tickets"
        )
        assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 4
        assert len(ledger(daemons[0].engine)) == 4
        seen = list(events)  # (once the holder stops, the other node takes the mailbox over)
    finally:
        for daemon in daemons:
            daemon.stop()
    pulled = {e["holder"].split(":")[0] for e in named(seen, "imap_captured")}
    connected = {e["holder"].split(":")[0] for e in named(seen, "imap_connected")}
    assert len(pulled) == 1 and connected == pulled, "one node pulled the mailbox"
    (taken,) = named(seen, "imap_lease_taken")
    (waiting,) = named(seen, "imap_lease_held_elsewhere")
    assert waiting["by"] == taken["holder"] and waiting["holder"] != taken["holder"]


def test_imap_status_shows_who_pulls_each_mailbox_and_until_when(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n'
        '[[imap]]\nname = "helpdesk"\nhost = "imap.example.com"\nusername = "helpdesk@example.com"\n'
        '[[imap]]\nname = "security"\nhost = "imap.example.com"\nusername = "security@example.com"\n'
    )
    until = utcnow() + dt.timedelta(seconds=600)
    assert take_or_renew(engine, "helpdesk", "node-a:1:aaaa", 600, utcnow()) == 1
    assert main(["imap", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if "pulled by node-a:1:aaaa" in line]
    assert "(fence 1)" in line and "ran out" not in line
    shown = dt.datetime.fromisoformat(line.split(" until ")[1].split(" ")[0])
    assert abs((shown - until).total_seconds()) < 60
    assert "pulled by: nobody" in out.split("security:")[1], "a mailbox no node pulls yet"
    assert main(["imap", "status", "--json", "--config", str(config)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["helpdesk"]["lease_holder"] == "node-a:1:aaaa" and rows["helpdesk"]["lease_fence"] == 1
    assert rows["helpdesk"]["lease_expired"] is False
    assert rows["security"]["lease_holder"] is None
    # The holder froze: once its lease ran out, the status says any node may take it.
    assert take_or_renew(engine, "helpdesk", "node-a:1:aaaa", 0.001, utcnow()) == 1
    time.sleep(0.01)
    assert main(["imap", "status", "--config", str(config)]) == 0
    assert "(ran out: the next node to look takes it over)" in capsys.readouterr().out


def test_the_lease_is_renewed_by_its_own_thread_however_long_a_fetch_takes(engine: Engine) -> None:
    """The worker asks nothing for longer than the lease (one long FETCH): the lease still runs."""
    lease = MailboxLease(engine, "helpdesk", "node-a:1:aaaa", LEASE_SECONDS, structlog.get_logger())
    assert lease.acquire() and lease.fence == 1
    try:
        time.sleep(2.5 * LEASE_SECONDS)
        assert take_or_renew(engine, "helpdesk", "node-b:2:bbbb", LEASE_SECONDS, utcnow()) is None
        lease.keep()  # nothing lost
        # Taken over all the same (this node froze past its lease): the next keep() says so.
        later = utcnow() + dt.timedelta(seconds=2 * LEASE_SECONDS)
        assert take_or_renew(engine, "helpdesk", "node-b:2:bbbb", 600, later) == 2

        def lost() -> bool:
            try:
                lease.keep()
            except LeaseLost:
                return True
            return False

        wait_until(lost, what="the renewal finds the lease taken over")
    finally:
        lease.release()
    assert holder_of(engine) == "node-b:2:bbbb", "the release gives back only its own lease"
