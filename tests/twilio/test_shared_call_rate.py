"""Twilio's call rate is one budget for every daemon on the store: two Twilio dispatchers (two
engines to one database, one fake phone provider: one account) placing calls take their tokens
from the account's bucket in the database (intaked/twilio/rate.py). Time is a fake wall clock
that moves only when a bucket waits, so the test counts tokens and waits, never the machine's
timing."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Connection, Engine, select

from intaked.config import Settings
from intaked.ports.phone import CallRequest
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import outbox_table, rate_bucket_table
from intaked.twilio.dispatcher import TwilioSender
from intaked.twilio.rate import SharedTokenBucket, call_bucket_name
from tests.support.fake_phone import FakePhoneProvider
from tests.twilio.conftest import ACCOUNT_SID, twilio_settings
from tests.twilio.test_dispatcher_port import queue

T0 = dt.datetime(2026, 12, 24, 8, 0, tzinfo=dt.UTC)
BUCKET = call_bucket_name(ACCOUNT_SID)


class WallClock:
    """The nodes' shared wall clock: it moves only when a node sleeps (each node's sleeps kept)."""

    def __init__(self) -> None:
        self.now = T0
        self.sleeps: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def sleeper(self, node: str) -> SleepOf:
        return SleepOf(self, self.sleeps.setdefault(node, []))

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += dt.timedelta(seconds=seconds)


class SleepOf:
    """One node's ``sleep``: it records the wait and moves the shared clock."""

    def __init__(self, clock: WallClock, record: list[float]) -> None:
        self._clock = clock
        self._record = record

    def __call__(self, seconds: float) -> None:
        self._record.append(seconds)
        self._clock.advance(seconds)


class CountedBucket(SharedTokenBucket):
    """The shared bucket, counting the tokens it got."""

    issued = 0

    def try_acquire(self) -> float:
        wait = super().try_acquire()
        if wait == 0.0:
            self.issued += 1
        return wait


@dataclass
class TimedPhone(FakePhoneProvider):
    """The fake provider, noting the clock's time at each call created."""

    clock: WallClock | None = None
    placed_at: list[dt.datetime] = field(default_factory=list)

    def create_call(self, call: CallRequest) -> str:
        assert self.clock is not None
        self.placed_at.append(self.clock())
        return super().create_call(call)


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: two daemons."""
    first, second = make_engine(db_url), make_engine(db_url)
    upgrade(first)
    yield first, second
    first.dispose()
    second.dispose()


def no_listener(conn: Connection, attempt_id: int, now: dt.datetime) -> None:
    """No page attempts here: nothing to tell."""


def dispatcher(
    engine: Engine, settings: Settings, phone: FakePhoneProvider, clock: WallClock, node: str
) -> tuple[TwilioSender, CountedBucket]:
    rate = settings.twilio.calls_per_second
    bucket = CountedBucket(engine, BUCKET, rate, clock=clock, sleep=clock.sleeper(node))
    return TwilioSender(engine, settings, phone, bucket, on_attempt=no_listener), bucket


def queue_calls(engine: Engine, count: int) -> None:
    for n in range(count):
        to = f"+8869120002{n:02d}"
        queue(engine, "call", {"to": to, "twiml": "<Response/>"}, f"call-{n}")


def test_a_second_dispatcher_waits_for_the_budget_the_first_spent(engines: tuple[Engine, Engine]) -> None:
    settings = twilio_settings(twilio={"calls_per_second": 1.0})
    phone = FakePhoneProvider()
    clock = WallClock()
    first, first_bucket = dispatcher(engines[0], settings, phone, clock, "first")
    second, second_bucket = dispatcher(engines[1], settings, phone, clock, "second")
    queue_calls(engines[0], 6)
    assert first.dispatch_once("call") == 5, "a batch of calls is what the rate lets out in 5 s"
    assert second.dispatch_once("call") == 1
    assert len(phone.calls) == 6 and first_bucket.issued + second_bucket.issued == 6
    assert clock.sleeps["first"] == pytest.approx([1.0] * 4)
    assert clock.sleeps["second"] == pytest.approx([1.0]), "no fresh budget of its own: it waited"
    assert clock.now - T0 == dt.timedelta(seconds=5), "6 calls at 1/s: 5 s after the first"
    with engines[1].connect() as conn:
        tokens = conn.execute(select(rate_bucket_table.c.tokens).where(rate_bucket_table.c.name == BUCKET))
        assert tokens.scalar_one() == pytest.approx(0.0)


def test_two_dispatchers_at_once_never_place_calls_faster_than_the_rate(
    engines: tuple[Engine, Engine],
) -> None:
    rate, calls = 2.0, 12
    settings = twilio_settings(twilio={"calls_per_second": rate}, outbox={"batch_size": 2})
    clock = WallClock()
    phone = TimedPhone(clock=clock)
    nodes = [dispatcher(engines[n], settings, phone, clock, f"node{n}") for n in range(2)]
    queue_calls(engines[0], calls)
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(sender: TwilioSender) -> None:
        barrier.wait()
        try:
            while sender.dispatch_once("call"):
                pass
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(sender,)) for sender, _ in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(phone.calls) == calls and sum(bucket.issued for _, bucket in nodes) == calls
    with engines[0].connect() as conn:
        states = set(conn.execute(select(outbox_table.c.state)).scalars())
    assert states == {"sent"}
    waited = sum(sum(sleeps) for sleeps in clock.sleeps.values())
    assert waited >= (calls - 1) / rate - 1e-6, "the clock moved only by waits: one budget for both"
    for placed, when in enumerate(sorted(phone.placed_at), start=1):
        elapsed = (when - T0).total_seconds()
        assert placed <= 1 + rate * elapsed + 1e-6, f"call {placed} at {elapsed} s beats the rate"


def test_a_dispatcher_takes_from_its_accounts_bucket_in_the_store(engines: tuple[Engine, Engine]) -> None:
    settings = twilio_settings(twilio={"calls_per_second": 100.0})
    phone = FakePhoneProvider()
    sender = TwilioSender(engines[0], settings, phone, on_attempt=no_listener)  # the daemon's default
    queue_calls(engines[0], 3)
    assert sender.dispatch_once("call") == 3
    assert len(phone.calls) == 3
    with engines[1].connect() as conn:
        (row,) = conn.execute(select(rate_bucket_table)).all()
    assert row.name == f"twilio_calls:{ACCOUNT_SID}" and row.tokens < 1.0
