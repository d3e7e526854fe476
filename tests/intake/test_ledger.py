"""The intake ledger: failures retry then quarantine, crashed claims recover, fencing prevents doubles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from intaked.intake import processor
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.ingest import ClaimLost
from intaked.intake.ledger import claim_batch, recover_abandoned_claims
from intaked.intake.processor import parse_items, process_once, store_one
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import InboundItem, Ticket
from tests.support.daemon import make_settings
from tests.support.liveness import this_worker_died

ITEMS = InboundItem.__table__


def mail(n: int) -> bytes:
    return (
        f"From: user{n}@example.com\r\nSubject: report {n}\r\nMessage-ID: <m{n}@example.com>\r\n\r\n"
        f"body {n}\r\n"
    ).encode()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def states(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {r.id: r.state for r in conn.execute(select(ITEMS.c.id, ITEMS.c.state))}


def ticket_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Ticket.__table__)).scalar_one())


def make_due(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(update(ITEMS).values(next_attempt_at=None))


def test_failing_item_is_retried_then_quarantined_never_deleted(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(db_url, intake={"max_attempts": 3})
    (item_id,) = insert_items(engine, [RawItem("smtp", mail(1))])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk full (injected)")

    monkeypatch.setattr(processor, "ingest_mail_batch", broken)
    for attempt in (1, 2):
        assert process_once(engine, settings) == []
        with engine.connect() as conn:
            row = conn.execute(select(ITEMS).where(ITEMS.c.id == item_id)).one()
        assert (row.state, row.attempts) == ("received", attempt)
        assert row.next_attempt_at is not None and row.next_attempt_at > dt.datetime.now(dt.UTC)
        assert "disk full (injected)" in row.last_error
        assert process_once(engine, settings) == [], "not retried before its backoff"
        make_due(engine)
    process_once(engine, settings)
    assert states(engine) == {item_id: "quarantined"}
    assert ticket_count(engine) == 0
    monkeypatch.undo()
    make_due(engine)
    assert process_once(engine, settings) == [], "a quarantined item waits for a person"
    with engine.connect() as conn:
        assert conn.execute(select(ITEMS.c.raw_size)).scalar_one() == len(mail(1))


def test_one_bad_item_does_not_hold_back_its_batch(
    engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(db_url)
    ids = insert_items(engine, [RawItem("smtp", mail(n)) for n in range(5)])
    real = processor.ingest_mail_batch

    def fails_on_third(conn: Any, entries: Any, *args: Any) -> Any:
        if any(item.id == ids[2] for item, _, _ in entries):
            raise ValueError("poison (injected)")
        return real(conn, entries, *args)

    monkeypatch.setattr(processor, "ingest_mail_batch", fails_on_third)
    outcomes = process_once(engine, settings)
    assert len(outcomes) == 4
    assert ticket_count(engine) == 4
    assert states(engine)[ids[2]] == "received"


def recover(engine: Engine, *, max_attempts: int) -> int:
    return recover_abandoned_claims(engine, max_attempts=max_attempts, lease_seconds=5, timeout_seconds=600)


def test_claims_of_a_crashed_worker_are_recovered(engine: Engine, db_url: str) -> None:
    settings = make_settings(db_url)
    insert_items(engine, [RawItem("smtp", mail(n)) for n in range(3)])
    claimed = claim_batch(engine, 10)  # ... and then the process was killed
    assert len(claimed) == 3 and set(states(engine).values()) == {"processing"}
    assert process_once(engine, settings) == [], "claimed items are not taken twice"
    this_worker_died(engine)
    assert recover(engine, max_attempts=5) == 3
    assert [len(process_once(engine, settings)) for _ in range(4)] == [1, 1, 1, 0], "tried before: alone"
    assert ticket_count(engine) == 3


def test_a_crash_in_a_batch_counts_only_against_the_message_that_causes_it(
    engine: Engine, db_url: str
) -> None:
    """Items of a batch the process died in are retried one by one: the innocent ones become tickets,
    and only the message that keeps killing the worker is quarantined."""
    settings = make_settings(db_url, intake={"max_attempts": 3})
    insert_items(engine, [RawItem("smtp", mail(n)) for n in range(5)])
    poison = 3  # the ledger id of mail(2): the worker dies whenever it holds it
    for _ in range(10):
        claimed = claim_batch(engine, 10)
        if not claimed:
            break
        if any(item.id == poison for item in claimed):  # ... and the process is killed
            this_worker_died(engine)
            recover(engine, max_attempts=3)
            continue
        store_one(engine, parse_items(claimed)[0], settings)
    assert states(engine) == {1: "done", 2: "done", 3: "quarantined", 4: "done", 5: "done"}
    assert ticket_count(engine) == 4


def test_item_that_keeps_crashing_the_worker_is_quarantined(engine: Engine) -> None:
    insert_items(engine, [RawItem("smtp", mail(1))])
    for _ in range(3):
        assert len(claim_batch(engine, 10)) == 1  # the worker dies while processing it
        this_worker_died(engine)
        recover(engine, max_attempts=3)
    assert set(states(engine).values()) == {"quarantined"}
    with engine.connect() as conn:
        assert "claimed too many times" in conn.execute(select(ITEMS.c.last_error)).scalar_one()


def test_a_lost_claim_cannot_commit_a_second_ticket(engine: Engine, db_url: str) -> None:
    settings = make_settings(db_url)
    insert_items(engine, [RawItem("smtp", mail(1))])
    (slow,) = claim_batch(engine, 10)
    # The slow worker is presumed dead; its claim times out and another worker takes the item.
    recover_abandoned_claims(  # alive but hung: the last resort, the claim timeout
        engine,
        max_attempts=5,
        lease_seconds=5,
        timeout_seconds=0,
        now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
    )
    assert len(process_once(engine, settings)) == 1
    (entry,) = parse_items([slow])
    with pytest.raises(ClaimLost):
        store_one(engine, entry, settings)  # the slow worker wakes up and tries to finish
    assert ticket_count(engine) == 1
