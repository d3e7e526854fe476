"""A message that hangs or crashes the parser costs only itself: it is filed unparsed, the rest parse."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from intaked.intake.capture import RawItem, insert_items
from intaked.intake.parsepool import ParsePool
from intaked.intake.processor import process_once
from intaked.parsing import ParsedMessage
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import Message, Ticket
from tests.support.daemon import make_settings
from tests.support.hostile import hostile_parse


def mail(subject: str) -> bytes:
    return f"From: a@example.com\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n".encode()


@pytest.fixture
def pool() -> ParsePool:
    parser = ParsePool(1, timeout_seconds=2.0, parse=hostile_parse)
    yield parser
    parser.close()


def test_worker_processes_parse_like_the_daemon(pool: ParsePool) -> None:
    results = pool.parse_many([mail("one"), mail("two")])
    assert [r.subject for r in results if isinstance(r, ParsedMessage)] == ["one", "two"]


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ("HANG-ME", "parser gave up after 2s"),
        ("CRASH-ME", "parser crashed on this message"),
        ("RAISE-ME", "parser failed: RuntimeError: injected parser bug"),
    ],
)
def test_hostile_message_is_isolated(pool: ParsePool, marker: str, problem: str) -> None:
    results = pool.parse_many([mail("before"), mail(marker), mail("after")])
    assert isinstance(results[0], ParsedMessage) and results[0].subject == "before"
    assert isinstance(results[2], ParsedMessage) and results[2].subject == "after"
    assert isinstance(results[1], str) and results[1].startswith(problem)
    again = pool.parse_many([mail("later")])
    assert isinstance(again[0], ParsedMessage), "the pool recovers for the next batch"


def test_unparseable_message_still_becomes_a_ticket(pool: ParsePool, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    insert_items(
        engine,
        [
            RawItem("smtp", mail("CRASH-ME now"), envelope_from="victim@example.com"),
            RawItem("smtp", mail("fine")),
        ],
    )
    outcomes = process_once(engine, make_settings(sqlite_url), pool)
    assert [o.state for o in outcomes] == ["done", "done"]
    with engine.connect() as conn:
        tickets = conn.execute(select(Ticket.__table__).order_by("id")).all()
        messages = conn.execute(select(Message.__table__).order_by("id")).all()
    assert tickets[0].requester_email == "victim@example.com", "the envelope names the requester"
    assert "parser crashed on this message" in messages[0].parse_problems
    assert tickets[1].subject == "fine"
    engine.dispose()
