"""Periodic jobs once per slot across the nodes (intaked/store/jobruns.py, table ``job_runs``):
the slots every node computes alike, the one claim that lands among nodes racing for a slot (two
engines, several threads), a holder's own passes within its slot, and the pruning of old rows."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, insert, select

from intaked.store.engine import make_engine
from intaked.store.jobruns import OncePerSlot, claim_slot, job_slot, prune_job_runs
from intaked.store.migrate import upgrade
from intaked.store.models import job_run_table

T0 = dt.datetime(2026, 12, 24, 8, 0, 3, 500_000, tzinfo=dt.UTC)


class Clock:
    """A clock the test sets."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: two nodes."""
    first, second = make_engine(db_url), make_engine(db_url)
    upgrade(first)
    yield first, second
    first.dispose()
    second.dispose()


def runs(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        query = select(job_run_table).order_by(job_run_table.c.job, job_run_table.c.slot_start)
        return [dict(row) for row in conn.execute(query).mappings()]


def test_slots_are_counted_from_the_epoch_in_utc() -> None:
    assert job_slot(T0, 5) == dt.datetime(2026, 12, 24, 8, 0, 0, tzinfo=dt.UTC)
    assert job_slot(T0, 300) == dt.datetime(2026, 12, 24, 8, 0, 0, tzinfo=dt.UTC)
    assert job_slot(T0, 0.2) == dt.datetime(2026, 12, 24, 8, 0, 3, 400_000, tzinfo=dt.UTC)
    taipei = T0.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert job_slot(taipei, 7) == job_slot(T0, 7), "the same slot whatever the node's time zone"
    assert job_slot(T0 + dt.timedelta(seconds=1.5), 5) == job_slot(T0, 5) + dt.timedelta(seconds=5)


def test_among_nodes_racing_for_a_slot_exactly_one_claim_lands(engines: tuple[Engine, Engine]) -> None:
    slot = job_slot(T0, 5)
    barrier = threading.Barrier(8)
    landed: list[str] = []

    def node(number: int) -> None:
        engine = engines[number % 2]
        barrier.wait()
        if claim_slot(engine, "sla_check", slot, T0, node=f"node{number}", worker=f"node{number}:1:x"):
            landed.append(f"node{number}")

    threads = [threading.Thread(target=node, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(landed) == 1
    (row,) = runs(engines[0])
    assert (row["job"], row["slot_start"], row["node"]) == ("sla_check", slot, landed[0])
    assert row["finished_at"] is None and row["outcome"] is None
    later = slot + dt.timedelta(seconds=5)
    assert claim_slot(engines[1], "sla_check", later, T0), "the next slot is free again"
    assert claim_slot(engines[0], "sweep", slot, T0), "another job's slot is its own"
    assert not claim_slot(engines[0], "sla_check", later, T0)


def test_a_slot_runs_once_on_the_node_that_claimed_it(engines: tuple[Engine, Engine]) -> None:
    clock = Clock(T0)
    first = OncePerSlot(engines[0], "sweep", 60, clock=clock)
    second = OncePerSlot(engines[1], "sweep", 60, clock=clock)
    passes: list[str] = []

    def work(name: str, handled: int) -> object:
        def run(now: dt.datetime) -> int:
            passes.append(name)
            return handled

        return run

    assert first.run(work("first", 2)) == 2
    assert second.run(work("second", 2)) is None, "another node's slot"
    assert first.run(work("first", 2)) is None, "one pass per slot"
    clock.now += dt.timedelta(seconds=60)
    assert second.run(work("second", 0)) == 0
    assert first.run(work("first", 0)) is None
    assert passes == ["first", "second"]
    done = runs(engines[0])
    assert [(r["slot_start"], r["outcome"], r["handled"]) for r in done] == [
        (job_slot(T0, 60), "done", 2),
        (job_slot(T0, 60) + dt.timedelta(seconds=60), "done", 0),
    ]
    assert all(r["finished_at"] is not None for r in done)


def test_a_batch_job_drains_in_its_slot_and_a_failed_pass_is_retried_there(
    engines: tuple[Engine, Engine],
) -> None:
    clock = Clock(T0)
    holder = OncePerSlot(engines[0], "sla_check", 5, drain=True, clock=clock)
    other = OncePerSlot(engines[1], "sla_check", 5, drain=True, clock=clock)
    batches = iter([500, 500, 7, 0])
    assert holder.run(lambda now: next(batches)) == 500
    assert other.run(lambda now: 1) is None

    def fails(now: dt.datetime) -> int:
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError):
        holder.run(fails)
    (row,) = runs(engines[0])
    assert (row["outcome"], row["handled"]) == ("failed", 500)
    assert holder.run(lambda now: next(batches)) == 500, "the holder tries again in its own slot"
    assert holder.run(lambda now: next(batches)) == 7
    assert holder.run(lambda now: next(batches)) == 0
    assert holder.run(lambda now: 1) is None, "a pass that found nothing ends the slot"
    (row,) = runs(engines[0])
    assert (row["outcome"], row["handled"]) == ("done", 1007)


def test_rows_older_than_seven_days_are_pruned(engines: tuple[Engine, Engine]) -> None:
    engine = engines[0]
    with engine.begin() as conn:
        for days in (8, 6):
            when = T0 - dt.timedelta(days=days)
            conn.execute(
                insert(job_run_table).values(
                    job="sweep", slot_start=when, node="n", worker="n:1:x", started_at=when
                )
            )
    assert prune_job_runs(engine, T0) == 1
    assert [r["slot_start"] for r in runs(engine)] == [T0 - dt.timedelta(days=6)]
