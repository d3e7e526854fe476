"""Mailbox leases in the store (intaked/store/leases.py), on SQLite and PostgreSQL: taken when free,
renewed by its holder, refused to others until it runs out or its holder is gone, the fence one
more at every take-over, and a capture committed only while the lease and its fence are ours."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, update

from intaked.intake.capture import RawItem, insert_items
from intaked.store.engine import make_engine
from intaked.store.leases import LeaseLost, ensure_held, holds, lease_of, release, take_or_renew
from intaked.store.liveness import mark_gone
from intaked.store.migrate import upgrade
from intaked.store.models import imap_mailbox_table, inbound_item_table, worker_table

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
LEASE = 15.0


def later(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    store = make_engine(db_url)
    upgrade(store)
    yield store
    store.dispose()


def add_worker(engine: Engine, worker: str, node: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            worker_table.insert().values(
                id=worker,
                node=node,
                role="front",
                pid=1,
                state="alive",
                started_at=T0,
                heartbeat_at=T0,
                lease_seconds=5.0,
            )
        )


def item(n: int) -> RawItem:
    return RawItem(channel="imap", raw=f"Subject: {n}\r\n\r\nbody\r\n".encode(), source_ref=f"imap:box:1:{n}")


def ledger_refs(engine: Engine) -> list[str | None]:
    with engine.connect() as conn:
        return sorted(r.source_ref for r in conn.execute(select(inbound_item_table.c.source_ref)))


def test_first_taker_gets_fence_one_and_renewing_keeps_it(engine: Engine) -> None:
    assert lease_of(engine, "box") is None
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, T0) == 1
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, later(5)) == 1, "a renewal keeps the fence"
    lease = lease_of(engine, "box")
    assert lease is not None
    assert (lease.holder, lease.expires_at, lease.fence) == ("node-a:1:aa", later(5 + LEASE), 1)
    with engine.connect() as conn:
        row = conn.execute(select(imap_mailbox_table)).one()
    assert row.last_uid == 0 and row.uidvalidity is None, "the row a mailbox never pulled gets"


def test_another_holder_waits_for_the_lease_to_run_out_and_takes_it_with_a_larger_fence(
    engine: Engine,
) -> None:
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, T0) == 1
    assert take_or_renew(engine, "box", "node-b:2:bb", LEASE, later(LEASE - 1)) is None
    assert take_or_renew(engine, "box", "node-b:2:bb", LEASE, later(LEASE)) == 2, "ran out: taken over"
    # The old holder comes back: the lease is no longer its own, and renewing does not steal it.
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, later(LEASE + 1)) is None
    with engine.begin() as conn:
        assert not holds(conn, "box", "node-a:1:aa", 1)
        assert holds(conn, "box", "node-b:2:bb", 2)
        assert not holds(conn, "box", "node-b:2:bb", 1), "the holder with a stale fence"
        assert not holds(conn, "other", "node-b:2:bb", 2), "a mailbox without a row"
    lease = lease_of(engine, "box")
    assert lease is not None and (lease.holder, lease.fence) == ("node-b:2:bb", 2)


def test_an_expired_lease_nobody_took_is_still_its_holders(engine: Engine) -> None:
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, T0) == 1
    with engine.begin() as conn:
        assert holds(conn, "box", "node-a:1:aa", 1), "no take-over changed the row"
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, later(10 * LEASE)) == 1


def test_release_frees_the_lease_at_once_and_the_next_taker_fences_the_old_holder(engine: Engine) -> None:
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, T0) == 1
    assert not release(engine, "box", "node-b:2:bb"), "only the holder gives it back"
    assert take_or_renew(engine, "box", "node-b:2:bb", LEASE, later(1)) is None
    assert release(engine, "box", "node-a:1:aa")
    lease = lease_of(engine, "box")
    assert lease is not None and (lease.holder, lease.expires_at) == (None, None)
    assert take_or_renew(engine, "box", "node-b:2:bb", LEASE, later(1)) == 2


def test_a_lease_whose_holder_is_gone_is_free_before_it_runs_out(engine: Engine) -> None:
    add_worker(engine, "node-a:1:aa", "node-a")
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, T0) == 1
    assert take_or_renew(engine, "box", "node-b:2:bb", LEASE, later(1)) is None, "its holder is alive"
    assert mark_gone(engine, {"node-a:1:aa": "no heartbeat for more than 5s"}) == 1
    assert take_or_renew(engine, "box", "node-b:2:bb", LEASE, later(1)) == 2
    # The gone worker heartbeats again (it was only stopped): its lease stays taken.
    with engine.begin() as conn:
        conn.execute(update(worker_table).where(worker_table.c.id == "node-a:1:aa").values(state="alive"))
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, later(2)) is None


def test_each_mailbox_has_its_own_lease(engine: Engine) -> None:
    assert take_or_renew(engine, "helpdesk", "node-a:1:aa", LEASE, T0) == 1
    assert take_or_renew(engine, "security", "node-b:2:bb", LEASE, T0) == 1
    assert take_or_renew(engine, "helpdesk", "node-b:2:bb", LEASE, later(1)) is None
    assert take_or_renew(engine, "security", "node-a:1:aa", LEASE, later(1)) is None


def test_a_capture_commits_only_while_the_lease_and_fence_are_ours(engine: Engine) -> None:
    assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, T0) == 1
    insert_items(engine, [item(1)], also=lambda conn: ensure_held(conn, "box", "node-a:1:aa", 1))
    assert ledger_refs(engine) == ["imap:box:1:1"]
    # node-a is stopped past its lease; node-b takes over. node-a's fetched mail must not be stored.
    assert take_or_renew(engine, "box", "node-b:2:bb", LEASE, later(LEASE + 1)) == 2
    with pytest.raises(LeaseLost) as lost:
        insert_items(
            engine,
            [item(2), item(3)],
            also=lambda conn: ensure_held(conn, "box", "node-a:1:aa", 1, not_stored=2),
        )
    assert lost.value.not_stored == 2
    assert ledger_refs(engine) == ["imap:box:1:1"], "the transaction rolled back"
    insert_items(engine, [item(2), item(3)], also=lambda conn: ensure_held(conn, "box", "node-b:2:bb", 2))
    assert ledger_refs(engine) == ["imap:box:1:1", "imap:box:1:2", "imap:box:1:3"]


def test_many_nodes_racing_for_a_free_lease_one_wins(engine: Engine) -> None:
    nodes = [f"node-{n}:{n}:{n:02x}" for n in range(6)]
    start = threading.Barrier(len(nodes))
    fences: dict[str, int | None] = {}

    def take(holder: str) -> None:
        start.wait()
        fences[holder] = take_or_renew(engine, "box", holder, LEASE, T0)

    threads = [threading.Thread(target=take, args=(holder,)) for holder in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    winners = [holder for holder, fence in fences.items() if fence is not None]
    assert len(fences) == len(nodes) and len(winners) == 1
    assert fences[winners[0]] == 1
    lease = lease_of(engine, "box")
    assert lease is not None and lease.holder == winners[0]


def test_a_take_over_waits_for_the_holders_capture_transaction(pg_url: str) -> None:
    """PostgreSQL: the row lock of :func:`holds` orders a capture and a take-over. The capture
    commits first; the take-over, which waited, fences the old holder from then on."""
    engine = make_engine(pg_url)
    upgrade(engine)
    try:
        assert take_or_renew(engine, "box", "node-a:1:aa", LEASE, T0) == 1
        taken: list[int | None] = []
        with engine.begin() as conn:
            assert holds(conn, "box", "node-a:1:aa", 1)  # the row is locked until the commit
            thief = threading.Thread(
                target=lambda: taken.append(
                    take_or_renew(engine, "box", "node-b:2:bb", LEASE, later(LEASE + 1))
                )
            )
            thief.start()
            thief.join(1.0)
            assert not taken, "the take-over waits for the capture's transaction"
        thief.join(30)
        assert taken == [2]
        with engine.begin() as conn:
            assert not holds(conn, "box", "node-a:1:aa", 1)
    finally:
        engine.dispose()
