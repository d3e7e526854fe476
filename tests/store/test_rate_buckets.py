"""Token buckets in the database (intaked/store/ratebuckets.py, table ``rate_buckets``), on a
clock the test sets: at one instant no more than the capacity across two engines; after t seconds
rate × t more; many threads taking at once never get more than that; a node whose clock is behind
gets nothing extra."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import rate_bucket_table
from intaked.store.ratebuckets import take

T0 = dt.datetime(2026, 12, 24, 8, 0, tzinfo=dt.UTC)
NAME = "twilio_calls:test"


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: two nodes."""
    first, second = make_engine(db_url), make_engine(db_url)
    upgrade(first)
    yield first, second
    first.dispose()
    second.dispose()


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_capacity_at_one_instant_then_rate_times_elapsed(engines: tuple[Engine, Engine]) -> None:
    first, second = engines
    taken = [take(engines[n % 2], NAME, 2.0, 3.0, T0) for n in range(5)]
    assert taken[:3] == [0.0, 0.0, 0.0], "a new bucket starts full"
    assert taken[3:] == [pytest.approx(0.5)] * 2, "then nothing, on either node: one token in 0.5 s"
    assert take(second, NAME, 2.0, 3.0, at(0.25)) == pytest.approx(0.25)
    assert take(first, NAME, 2.0, 3.0, at(0.5)) == 0.0, "rate 2/s: one token after 0.5 s"
    assert take(second, NAME, 2.0, 3.0, at(0.5)) > 0
    later = [take(engines[n % 2], NAME, 2.0, 3.0, at(1.5)) for n in range(3)]
    assert later == [0.0, 0.0, pytest.approx(0.5)], "1 s later: rate × 1 s = 2 more"
    after_idle = [take(engines[n % 2], NAME, 2.0, 3.0, at(100)) for n in range(4)]
    assert after_idle.count(0.0) == 3, "an idle bucket holds its capacity, no more"
    with first.connect() as conn:
        row = conn.execute(select(rate_bucket_table).where(rate_bucket_table.c.name == NAME)).one()
    assert (row.tokens, row.updated_at) == (pytest.approx(0.0), at(100))


def test_a_node_whose_clock_is_behind_gets_nothing_extra(engines: tuple[Engine, Engine]) -> None:
    first, second = engines
    assert take(first, NAME, 1.0, 1.0, at(10)) == 0.0
    assert take(second, NAME, 1.0, 1.0, at(8)) == pytest.approx(1.0), "no refill before the last take"
    assert take(second, NAME, 1.0, 1.0, at(10.5)) > 0
    assert take(second, NAME, 1.0, 1.0, at(11)) == 0.0


@pytest.mark.parametrize("seconds", [0, 1, 2])
def test_threads_taking_at_once_never_get_more_than_the_budget(
    engines: tuple[Engine, Engine], seconds: int
) -> None:
    """Eight threads on two engines race at each instant until refused: together they get the
    capacity at the first instant, then rate × the seconds since (up to the capacity), exactly."""
    rate, capacity = 3.0, 4.0
    for earlier in range(seconds):  # the bucket as it is after the earlier instants' races
        while take(engines[0], NAME, rate, capacity, at(earlier)) == 0.0:
            pass
    barrier = threading.Barrier(8)
    issued: list[int] = []
    lock = threading.Lock()

    def node(number: int) -> None:
        engine = engines[number % 2]
        barrier.wait()
        mine = 0
        while take(engine, NAME, rate, capacity, at(seconds)) == 0.0:
            mine += 1
        with lock:
            issued.append(mine)

    threads = [threading.Thread(target=node, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(issued) == 8
    assert sum(issued) == (capacity if seconds == 0 else rate)
