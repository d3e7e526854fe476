"""Every real-world mail of the shared corpus becomes a ticket: none dropped, none quarantined.

Once through the ledger with the exact bytes (SQLite and PostgreSQL), once over real SMTP into a
running daemon (SQLite).
"""

from __future__ import annotations

import json
import smtplib
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from intaked.intake.capture import RawItem, insert_items
from intaked.intake.parsepool import ParsePool
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import inbound_item_table, message_table, ticket_table
from tests.parsing.corpus import all_messages, require_corpus
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until


def corpus_files() -> list[Path]:
    require_corpus()
    files = all_messages()
    assert len(files) > 300, "the corpus README promises about 320 messages"
    return files


def assert_every_item_is_a_ticket(engine: Engine, sent: int) -> None:
    with engine.connect() as conn:
        states = Counter(r.state for r in conn.execute(select(inbound_item_table.c.state)))
        tickets = conn.execute(select(ticket_table.c.subject, ticket_table.c.id)).all()
        messages = conn.execute(select(message_table.c.ticket_id, message_table.c.parse_problems)).all()
    assert sum(states.values()) == sent
    assert set(states) <= {"done", "duplicate"}, f"nothing dropped or quarantined: {states}"
    assert len(messages) == states["done"], "one stored message per item that is not a duplicate"
    assert {m.ticket_id for m in messages} == {t.id for t in tickets}, "replies thread into tickets"
    problems = {m.ticket_id: json.loads(m.parse_problems or "[]") for m in messages}
    for ticket in tickets:
        if "\ufffd" in ticket.subject:
            assert problems[ticket.id], f"U+FFFD in {ticket.subject!r} with no problem recorded"


def test_whole_corpus_through_the_ledger(db_url: str) -> None:
    files = corpus_files()
    engine = make_engine(db_url)
    upgrade(engine)
    settings = make_settings(db_url)
    insert_items(
        engine, [RawItem("smtp", path.read_bytes(), envelope_from="corpus@example.com") for path in files]
    )
    pool = ParsePool(1, timeout_seconds=30)
    try:
        while process_once(engine, settings, pool):
            pass
    finally:
        pool.close()
    assert_every_item_is_a_ticket(engine, len(files))
    engine.dispose()


def test_whole_corpus_over_smtp(sqlite_url: str) -> None:
    files = corpus_files()
    daemon = DaemonThread(make_settings(sqlite_url)).start()
    try:
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port, timeout=60) as client:
            for path in files:
                refused = client.sendmail("corpus@example.com", ["helpdesk@example.com"], path.read_bytes())
                assert refused == {}
        wait_until(lambda: daemon.pending_items() == 0, timeout=120, what="the corpus to be filed")
        assert_every_item_is_a_ticket(daemon.engine, len(files))
    finally:
        daemon.stop()


@pytest.mark.parametrize("name", ["big5", "euc-kr", "iso-2022-jp", "shift_jis", "utf-8"])
def test_no_mojibake_where_the_corpus_has_cjk(name: str, sqlite_url: str) -> None:
    """Where a corpus file declares a CJK charset, the stored subject has no U+FFFD."""
    files = [
        p for p in corpus_files() if f"charset={name}".encode() in p.read_bytes().lower().replace(b'"', b"")
    ]
    if not files:
        pytest.skip(f"no corpus message declares {name}")
    engine = make_engine(sqlite_url)
    upgrade(engine)
    insert_items(engine, [RawItem("smtp", p.read_bytes()) for p in files])
    while process_once(engine, make_settings(sqlite_url)):
        pass
    with engine.connect() as conn:
        subjects = [r.subject for r in conn.execute(select(message_table.c.subject))]
        bodies = [r.body_text for r in conn.execute(select(message_table.c.body_text))]
    assert subjects and not [s for s in subjects if "\ufffd" in s]
    assert len([b for b in bodies if "\ufffd" in b]) <= len(bodies) // 10
    engine.dispose()
