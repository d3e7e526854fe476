"""Work held by a worker that died is taken up in seconds, not after a claim timeout; a worker
that is alive, or only cut off from the database for a while, keeps its work (issue 13, point 1)."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select, update

from intaked.intake.capture import RawItem, insert_items
from intaked.store.engine import make_engine
from intaked.store.liveness import LivenessKeeper, node_name, process_start_time, set_node_name
from intaked.store.migrate import upgrade
from intaked.store.models import inbound_item_table, worker_table
from intaked.store.types import utcnow
from tests.support.daemon import DaemonThread, make_settings
from tests.support.faults import StoreOutage
from tests.support.waiting import wait_until


def mail(n: int) -> bytes:
    return (
        f"From: wang{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: VPN 斷線 {n}\r\n"
        f"Message-ID: <live-{n}@example.com>\r\n\r\n連不上\r\n"
    ).encode()


def add_worker(
    engine: Engine, worker: str, *, node: str, pid: int, started: str | None, host: str | None = None
) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            worker_table.insert().values(
                id=worker,
                node=node,
                host=host or socket.gethostname(),
                role="back_office.intake",
                pid=pid,
                process_started=started,
                state="alive",
                started_at=now,
                heartbeat_at=now,
                lease_seconds=2.0,
            )
        )


def claimed_by(worker: str) -> Any:
    def claim(conn: Connection) -> None:
        conn.execute(
            update(inbound_item_table)
            .where(inbound_item_table.c.state == "received")
            .values(state="processing", attempts=1, claimed_by=f"{worker}/held", claimed_at=utcnow())
        )

    return claim


def states(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r.state for r in conn.execute(select(inbound_item_table).order_by(inbound_item_table.c.id))]


def worker_row(engine: Engine, worker: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(worker_table).where(worker_table.c.id == worker)).one()


@pytest.fixture
def daemon(db_url: str) -> Iterator[DaemonThread]:
    settings = make_settings(
        db_url, daemon={"back_office": "inline", "heartbeat_seconds": 0.5, "lease_seconds": 2.0}
    )
    running = DaemonThread(settings).start()
    yield running
    running.stop()


def test_the_claims_of_a_worker_whose_process_was_killed_are_taken_up_at_once(
    daemon: DaemonThread,
) -> None:
    """A back office on this node holds three items and is killed with SIGKILL: the live daemon
    sees its process gone at its next heartbeat and files the three tickets, long before any claim
    timeout (10 minutes), and before the dead worker's lease would even have run out."""
    engine = daemon.engine
    victim = subprocess.Popen(["sleep", "60"])
    worker = f"{node_name()}:{victim.pid}:0dead000"
    try:
        add_worker(engine, worker, node=node_name(), pid=victim.pid, started=process_start_time(victim.pid))
        insert_items(engine, [RawItem("smtp", mail(n)) for n in range(3)], also=claimed_by(worker))
        time.sleep(1.5)  # three heartbeats: a live worker's claims are left alone
        assert states(engine) == ["processing"] * 3
    finally:
        victim.kill()
        victim.wait()
    killed = time.monotonic()
    wait_until(lambda: states(engine) == ["done"] * 3, timeout=10, what="the dead worker's items filed")
    assert time.monotonic() - killed < 10
    assert daemon.ticket_count() == 3
    row = worker_row(engine, worker)
    assert row.state == "gone" and row.gone_reason == "its process exited"


def test_a_worker_of_another_node_that_stopped_beating_is_taken_for_dead_after_its_lease(
    daemon: DaemonThread,
) -> None:
    engine = daemon.engine
    worker = "node-b:4242:0b0b0b0b"
    add_worker(engine, worker, node="node-b", host="host-b", pid=4242, started=None)
    insert_items(engine, [RawItem("smtp", mail(n)) for n in range(2)], also=claimed_by(worker))
    silent = time.monotonic()
    wait_until(lambda: states(engine) == ["done"] * 2, timeout=10, what="the silent node's items filed")
    assert time.monotonic() - silent >= 1.5, "not before its lease (2 s) ran out"
    row = worker_row(engine, worker)
    assert row.state == "gone" and "no heartbeat" in row.gone_reason


def test_two_workers_found_dead_in_one_pass_each_keep_their_own_reason(daemon: DaemonThread) -> None:
    """A killed local worker and a silent remote one, both found at the same heartbeat: each row
    says why it was taken for dead."""
    engine = daemon.engine
    time.sleep(2.5)  # the daemon's keepers have been connected for a whole lease: they judge silence
    victim = subprocess.Popen(["sleep", "60"])
    started = process_start_time(victim.pid)
    victim.kill()
    victim.wait()
    local = f"{node_name()}:{victim.pid}:0dead001"
    remote = "node-c:4343:0c0c0c0c"
    long_ago = utcnow() - dt.timedelta(seconds=60)
    common = {"role": "back_office.intake", "state": "alive", "started_at": long_ago, "lease_seconds": 2.0}
    with engine.begin() as conn:  # both appear at once
        conn.execute(
            worker_table.insert(),
            [
                {
                    "id": local,
                    "node": node_name(),
                    "host": socket.gethostname(),
                    "pid": victim.pid,
                    "process_started": started,
                    "heartbeat_at": utcnow(),
                    **common,
                },
                {
                    "id": remote,
                    "node": "node-c",
                    "host": "host-c",
                    "pid": 4343,
                    "process_started": None,
                    "heartbeat_at": long_ago,
                    **common,
                },
            ],
        )
    wait_until(
        lambda: worker_row(engine, local).state == worker_row(engine, remote).state == "gone",
        timeout=10,
        what="both workers taken for dead",
    )
    assert worker_row(engine, local).gone_reason == "its process exited"
    assert "no heartbeat" in worker_row(engine, remote).gone_reason
    assert "its process exited" not in worker_row(engine, remote).gone_reason


def test_an_outage_of_the_store_never_makes_a_live_worker_look_dead(db_url: str) -> None:
    """Every heartbeat fails while the database is away; when it is back, the first to beat again
    must not judge the others by heartbeats they could not write."""
    setup = make_engine(db_url)
    upgrade(setup)
    engines = [make_engine(db_url), make_engine(db_url)]
    keepers: list[LivenessKeeper] = []
    try:
        for name, engine in zip(("node-a", "node-b"), engines, strict=True):
            set_node_name(name)
            keeper = LivenessKeeper(engine, role="test", heartbeat_seconds=3600, lease_seconds=1.0)
            keeper.start()  # registered; its own thread would beat only after an hour
            keepers.append(keeper)
        a, b = keepers
        outages = [StoreOutage(engine) for engine in engines]
        for outage in outages:
            outage.down = True
        time.sleep(1.3)  # longer than a lease
        a.pass_once()
        b.pass_once()
        assert all(outage.failed for outage in outages)
        for outage in outages:
            outage.down = False
        b.pass_once()  # back first: a's heartbeat is 1.3 s old, but b has only just reconnected
        assert worker_row(setup, a.id).state == "alive"
        a.pass_once()
        time.sleep(1.1)
        a.pass_once()
        b.pass_once()  # b has been connected for a lease now, and a beats
        assert worker_row(setup, a.id).state == "alive"
        time.sleep(1.2)  # a stops beating (it hangs)
        b.pass_once()
        row = worker_row(setup, a.id)
        assert row.state == "gone" and "no heartbeat" in row.gone_reason
        assert worker_row(setup, b.id).state == "alive"
    finally:
        set_node_name("")
        for keeper in keepers:
            keeper.stop()
        for engine in [*engines, setup]:
            engine.dispose()


def test_a_hung_worker_loses_its_claims_only_after_the_claim_timeout(db_url: str) -> None:
    """A live, beating worker whose claim is older than ``claim_timeout_seconds`` is hung: the
    last resort takes its items back; younger claims of a live worker stay."""
    from intaked.intake.ledger import recover_abandoned_claims

    engine = make_engine(db_url)
    upgrade(engine)
    try:
        worker = f"{node_name()}:1:0a11ve00"
        add_worker(engine, worker, node="elsewhere", host="elsewhere", pid=1, started=None)
        insert_items(engine, [RawItem("smtp", mail(1))], also=claimed_by(worker))
        later = utcnow() + dt.timedelta(seconds=30)
        assert recover_abandoned_claims(engine, max_attempts=5, lease_seconds=5, timeout_seconds=600) == 0
        assert (
            recover_abandoned_claims(engine, max_attempts=5, lease_seconds=5, timeout_seconds=10, now=later)
            == 1
        )
        assert states(engine) == ["received"]
    finally:
        engine.dispose()
