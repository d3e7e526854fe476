"""The SLA sync and the recomputation after a calendar change run on every node, out of any
schedule (intaked/scheduler.py): nodes doing them at once (threads on two engines), or all
waiting behind another writer, record each change once, because both lock the rows they rewrite
(intaked/sla/tracker.py)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable

from sqlalchemy import Engine, TextClause, func, insert, select, text, update

from intaked.sla.tracker import recompute_open, sync_tickets
from intaked.store.engine import make_engine
from intaked.store.models import calendar_override_table, ticket_event_table, ticket_table
from intaked.store.types import utcnow
from intaked.tickets.lifecycle import triage
from tests.sla.test_tracker import XMAS_EVE, Desk, at
from tests.support.waiting import wait_until

TICKETS = 12
NODES = 4


def on_nodes_at_once(engines: tuple[Engine, Engine], work: Callable[[Engine], int]) -> list[int]:
    """``work`` on ``NODES`` threads over the two engines, released together; what each returned."""
    barrier = threading.Barrier(NODES)
    results: list[int] = []

    def node(number: int) -> None:
        barrier.wait()
        results.append(work(engines[number % 2]))

    threads = [threading.Thread(target=node, args=(n,)) for n in range(NODES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == NODES, "a node's pass failed"
    return results


def events_per_ticket(engine: Engine, when: dt.datetime) -> list[int]:
    with engine.connect() as conn:
        counts = conn.execute(
            select(func.count())
            .where(ticket_event_table.c.kind == "deadlines_set", ticket_event_table.c.at == when)
            .group_by(ticket_event_table.c.ticket_id)
        )
        return list(counts.scalars())


def test_nodes_syncing_at_once_record_each_change_once(db_url: str) -> None:
    desk = Desk(db_url)
    other = make_engine(db_url)
    try:
        for _ in range(TICKETS):
            desk.report()
        with desk.engine.begin() as conn:  # another tool triages them all
            conn.execute(update(ticket_table).values(priority="P3"))
        ctx, when = desk.ctx, at(24, 17)
        synced = on_nodes_at_once((desk.engine, other), lambda engine: sync_tickets(engine, ctx, now=when))
        assert sum(synced) == TICKETS, f"each ticket synced by one node: {synced}"
        assert events_per_ticket(desk.engine, when) == [1] * TICKETS
        with desk.engine.connect() as conn:
            assert set(conn.execute(select(ticket_table.c.sla_priority)).scalars()) == {"P3"}
    finally:
        other.dispose()
        desk.engine.dispose()


def typhoon_desk(url: str) -> Desk:
    """Triaged tickets, and a typhoon day another tool wrote: every node's calendars change."""
    desk = Desk(url)
    for _ in range(TICKETS):
        triage(desk.engine, desk.ctx, desk.report(), priority="P3", now=XMAS_EVE)
    typhoon = {"calendar": "default", "day": dt.date(2026, 12, 28), "kind": "holiday", "name": "颱風假"}
    with desk.engine.begin() as conn:
        conn.execute(insert(calendar_override_table).values(**typhoon, created_at=utcnow()))
    return desk


def test_nodes_recomputing_after_a_calendar_change_record_each_ticket_once(db_url: str) -> None:
    desk = typhoon_desk(db_url)
    other = make_engine(db_url)
    try:
        ctx, when = desk.ctx, at(24, 17)
        changed = on_nodes_at_once((desk.engine, other), lambda engine: recompute_open(engine, ctx, now=when))
        assert sum(changed) == TICKETS, f"each ticket recomputed by one node: {changed}"
        assert events_per_ticket(desk.engine, when) == [1] * TICKETS
    finally:
        other.dispose()
        desk.engine.dispose()


def test_nodes_recomputing_behind_a_writers_lock_record_each_ticket_once(pg_url: str) -> None:
    """Every node read the tickets before any could write them (an agent's transaction held them):
    once it commits, one node writes the new deadlines and the others find them current."""
    name = f"recompute_{uuid.uuid4().hex[:8]}"  # the nodes' connections, told from anyone else's
    nodes_url = f"{pg_url}&application_name={name}"
    desk = typhoon_desk(nodes_url)
    other, agent = make_engine(nodes_url), make_engine(pg_url)
    ctx, when = desk.ctx, at(24, 17)
    changed: list[int] = []
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND wait_event_type = 'Lock'"
    )
    try:
        with agent.connect() as conn:
            holding = conn.begin()
            conn.execute(select(ticket_table.c.id).with_for_update())
            threads = [
                threading.Thread(
                    target=lambda engine=engine: changed.append(recompute_open(engine, ctx, now=when))
                )
                for engine in (desk.engine, other) * (NODES // 2)
            ]
            for thread in threads:
                thread.start()
            wait_until(
                lambda: _count(agent, waiting, name) == NODES, what="every node waiting for the agent's rows"
            )
            holding.commit()
        for thread in threads:
            thread.join()
        assert sorted(changed) == [0] * (NODES - 1) + [TICKETS]
        assert events_per_ticket(desk.engine, when) == [1] * TICKETS
    finally:
        other.dispose()
        agent.dispose()
        desk.engine.dispose()


def _count(engine: Engine, query: TextClause, name: str) -> int:
    """On a connection of its own: a transaction sees one snapshot of ``pg_stat_activity``."""
    with engine.connect() as conn:
        return int(conn.execute(query, {"name": name}).scalar_one())
