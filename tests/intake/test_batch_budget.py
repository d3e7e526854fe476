"""The back office's memory is bounded by bytes: a batch holds at most ``intake.batch_max_bytes``
of raw mail (or one larger message), and still every captured message becomes a ticket."""

from __future__ import annotations

import base64
import os
import smtplib
import tracemalloc
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from intaked.intake.capture import RawItem, insert_items
from intaked.intake.ledger import claim_batch
from intaked.intake.parsepool import ParsePool
from intaked.intake.processor import parse_items, process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import InboundItem, Ticket
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

ITEMS = InboundItem.__table__
MIB = 1024 * 1024


def mail(n: int, filler: int = 0) -> bytes:
    """A report of about ``filler`` bytes more than its headers (random, so it compresses little)."""
    body = base64.encodebytes(os.urandom(filler * 3 // 4)).replace(b"\n", b"\r\n") if filler else b"hi\r\n"
    return (
        f"From: user{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: report {n}\r\n"
        f"Message-ID: <budget-{n}@example.com>\r\nContent-Type: text/plain\r\n\r\n"
    ).encode() + body


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def test_a_batch_stops_at_its_byte_budget(engine: Engine) -> None:
    raws = [mail(n, filler=10_000) for n in range(6)]
    ids = insert_items(engine, [RawItem("smtp", raw) for raw in raws])
    budget = len(raws[0]) + len(raws[1]) + len(raws[2]) // 2  # two fit, the third does not

    first = claim_batch(engine, 100, max_bytes=budget)
    assert [item.id for item in first] == ids[:2], "oldest first, and no more than fits the budget"
    assert sum(item.raw_size for item in first) <= budget
    assert [item.raw for item in first] == raws[:2], "the exact bytes received"
    second = claim_batch(engine, 100, max_bytes=budget)
    assert [item.id for item in second] == ids[2:4]
    with engine.connect() as conn:
        waiting = conn.execute(select(ITEMS.c.id).where(ITEMS.c.state == "received")).scalars().all()
    assert waiting == ids[4:], "what did not fit stays for the next batch"


def test_a_message_over_the_budget_goes_alone(engine: Engine) -> None:
    ids = insert_items(engine, [RawItem("smtp", mail(1, filler=50_000)), RawItem("smtp", mail(2))])
    (big,) = claim_batch(engine, 100, max_bytes=1_000)
    assert big.id == ids[0] and big.raw_size > 1_000, "never stuck: the first item is always taken"
    (small,) = claim_batch(engine, 100, max_bytes=1_000)
    assert small.id == ids[1]


def test_the_processor_files_a_backlog_in_batches_of_its_budget(engine: Engine, db_url: str) -> None:
    raws = [mail(n, filler=20_000) for n in range(5)]
    insert_items(engine, [RawItem("smtp", raw) for raw in raws])
    settings = make_settings(db_url, intake={"batch_size": 100, "batch_max_bytes": 2 * len(raws[0]) + 100})
    assert [len(process_once(engine, settings)) for _ in range(4)] == [2, 2, 1, 0]
    with engine.connect() as conn:
        subjects = conn.execute(select(Ticket.__table__.c.subject).order_by("id")).scalars().all()
    assert subjects == [f"report {n}" for n in range(5)]


def test_parsed_entries_no_longer_hold_the_raw_bytes(engine: Engine) -> None:
    insert_items(engine, [RawItem("smtp", mail(1))])
    ((item, parsed, failure),) = parse_items(claim_batch(engine, 10))
    assert parsed is not None and parsed.subject == "report 1" and failure is None
    assert item.packed is None, "once parsed, the ledger's copy is the only one"
    with pytest.raises(ValueError, match="dropped once parsed"):
        _ = item.raw


def test_a_backlog_of_large_mail_is_filed_without_holding_it_all(engine: Engine, db_url: str) -> None:
    """The peak of the Python heap while 32 one-MiB messages are filed stays far below the
    backlog's own size: one budget's worth of mail (here one message) at a time."""
    settings = make_settings(db_url, intake={"batch_max_bytes": MIB})
    insert_items(engine, [RawItem("smtp", mail(0))])
    assert len(process_once(engine, settings)) == 1  # first use: imports, templates, caches
    raws = [mail(n, filler=MIB) for n in range(1, 33)]
    insert_items(engine, [RawItem("smtp", raw) for raw in raws])
    backlog = sum(map(len, raws))
    del raws
    tracemalloc.start()
    try:
        filed = 0
        while outcomes := process_once(engine, settings):
            filed += len(outcomes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert filed == 32
    assert peak < backlog / 2, f"peak {peak / MIB:.1f} MiB while filing a {backlog / MIB:.0f} MiB backlog"


def test_the_parse_pool_keeps_nothing_of_a_batch_it_parsed() -> None:
    """Its worker process gets the batch pickled; the pool's feeder thread must not keep that."""
    pool = ParsePool(1, timeout_seconds=30.0)
    try:
        pool.warm_up()
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            (result,) = pool.parse_many([mail(1, filler=8 * MIB)])
            assert not isinstance(result, str) and result.subject == "report 1"
            del result
            wait_until(
                lambda: tracemalloc.get_traced_memory()[0] - baseline < MIB,
                timeout=3,
                what="the pickled batch to be let go",
            )
        finally:
            tracemalloc.stop()
    finally:
        pool.close()


def test_a_daemon_with_a_small_budget_files_every_message(db_url: str) -> None:
    settings = make_settings(db_url, intake={"batch_size": 50, "batch_max_bytes": 4096})
    daemon = DaemonThread(settings).start()
    try:
        sizes = [0, 30_000, 200, 9_000, 0, 70_000, 100]
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
            for n, filler in enumerate(sizes):
                assert client.sendmail("user@example.com", ["helpdesk@example.com"], mail(n, filler)) == {}
        wait_until(lambda: daemon.ticket_count() == len(sizes), what="every message filed as a ticket")
        with daemon.engine.connect() as conn:
            subjects = conn.execute(select(Ticket.__table__.c.subject)).scalars().all()
    finally:
        daemon.stop()
    assert sorted(subjects) == sorted(f"report {n}" for n in range(len(sizes)))
