"""Timed passes run once per slot across the nodes (intaked/scheduler.py): two schedulers on two
engines to one database ("nodes", on a clock the test sets) each make a pass of the SLA checks,
the auto-close sweep and the hotline reconciliation; one of them does the work of each slot, the
next slot is done again, and a node that dies mid-pass (a real process, ``os._exit``) leaves its
slot unfinished and done by nobody until the next one."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, insert, select
from structlog.testing import capture_logs

from intaked.config import Settings
from intaked.ports.phone import ListedCall
from intaked.scheduler import Scheduler
from intaked.store.engine import make_engine
from intaked.store.jobruns import job_slot
from intaked.store.models import call_table, job_run_table, outbox_table, ticket_event_table
from intaked.tickets.lifecycle import resolve, triage
from tests.hotline.conftest import HOTLINE, MOBILE_UNKNOWN, hotline_settings
from tests.sla.test_tracker import XMAS_EVE, Desk, at, teams_desk
from tests.support.fake_phone import FakePhoneProvider

REPO = Path(__file__).resolve().parents[2]


class Clock:
    """The time both nodes see; the test moves it."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


class Node:
    """A daemon's scheduler on its own engine; counts how often it woke the outbox's senders."""

    def __init__(self, url: str, settings: Settings, clock: Clock, phone: Any = None) -> None:
        self.engine = make_engine(url)
        self.executor = ThreadPoolExecutor(max_workers=1)
        self.queued = 0
        self.scheduler = Scheduler(
            self.engine, self.executor, settings, self._queued, phone=phone, clock=clock
        )

    def _queued(self) -> None:
        self.queued += 1

    def close(self) -> None:
        self.executor.shutdown()
        self.engine.dispose()


@pytest.fixture(autouse=True)
def debug_lines() -> Iterator[None]:
    """Debug lines reach ``capture_logs`` (an earlier test may have set the level to warning)."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**before)


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    desk = teams_desk(db_url)
    yield desk
    desk.engine.dispose()


def two_nodes(desk: Desk, clock: Clock, phone: Any = None, settings: Settings | None = None) -> list[Node]:
    url = desk.engine.url.render_as_string(hide_password=False)
    return [Node(url, settings or desk.settings, clock, phone) for _ in range(2)]


def at_once(*passes: Callable[[], int]) -> None:
    """Run the passes in threads released together (two nodes woken at the same instant)."""
    barrier = threading.Barrier(len(passes))
    failures: list[BaseException] = []

    def run(one: Callable[[], int]) -> None:
        barrier.wait()
        try:
            one()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(one,)) for one in passes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def job_runs(engine: Engine, job: str) -> list[Any]:
    with engine.connect() as conn:
        query = select(job_run_table).where(job_run_table.c.job == job).order_by(job_run_table.c.slot_start)
        return list(conn.execute(query).mappings())


def count_events(engine: Engine, kind: str) -> int:
    with engine.connect() as conn:
        return len(
            conn.execute(select(ticket_event_table.c.id).where(ticket_event_table.c.kind == kind)).all()
        )


def outbox_purposes(engine: Engine) -> list[str]:
    """The warnings and breaches queued for mailing (acknowledgements aside)."""
    with engine.connect() as conn:
        query = select(outbox_table.c.purpose).where(outbox_table.c.purpose.like("sla_%"))
        return sorted(conn.execute(query).scalars())


def skipped(lines: list[dict[str, Any]], job: str) -> int:
    return sum(1 for line in lines if line["event"] == "job_slot_taken_elsewhere" and line["job"] == job)


def test_two_nodes_check_the_deadlines_once_per_slot(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P1", team="network", now=XMAS_EVE)
    later = desk.report(created=at(24, 16, 6))  # untriaged: its triage is due at 16:21
    clock = Clock(at(24, 16, 20))
    nodes = two_nodes(desk, clock)
    try:
        with capture_logs() as lines:
            at_once(*(node.scheduler.sla.pass_once for node in nodes))
        assert skipped(lines, "sla_check") == 1, "the other node skipped the slot"
        assert [node.queued for node in sorted(nodes, key=lambda n: n.queued)] == [0, 1]
        assert outbox_purposes(desk.engine) == ["sla_breach", "sla_breach", "sla_warning"]
        (run,) = job_runs(desk.engine, "sla_check")
        assert run["slot_start"] == job_slot(clock.now, desk.settings.sla.check_seconds)
        assert (run["outcome"], run["handled"]) == ("done", 1) and run["finished_at"] is not None

        clock.now = at(24, 16, 21)  # the next slot: done again, by whichever node comes first
        for node in reversed(nodes):
            node.scheduler.sla.pass_once()
        assert desk.ticket(later)["triage_breached_at"] is not None
        assert count_events(desk.engine, "sla_breach") == 2, "each ticket's breach once"
        assert len(outbox_purposes(desk.engine)) == 5
        assert [r["handled"] for r in job_runs(desk.engine, "sla_check")] == [1, 1]
    finally:
        for node in nodes:
            node.close()


CRASHING_NODE = """
import datetime as dt, os, sys
from concurrent.futures import ThreadPoolExecutor
import intaked.scheduler as scheduler
from intaked.store.engine import make_engine
from tests.sla.test_tracker import teams_desk

url, when = sys.argv[1], dt.datetime.fromisoformat(sys.argv[2])
settings = teams_desk(url).settings
def dies(*args, **kwargs):
    os._exit(17)  # the process dies mid-pass: no rollback handler, no finally
scheduler.check_due = dies
engine = make_engine(url)
node = scheduler.Scheduler(engine, ThreadPoolExecutor(1), settings, lambda: None, clock=lambda: when)
node.sla.pass_once()
"""


def test_a_node_dying_mid_pass_leaves_its_slot_unfinished_and_unrun(desk: Desk) -> None:
    number = desk.report()
    triage(desk.engine, desk.ctx, number, priority="P1", team="network", now=XMAS_EVE)
    clock = Clock(at(24, 16, 20))
    url = desk.engine.url.render_as_string(hide_password=False)
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_NODE, url, clock.now.isoformat()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 17, child.stderr
    (dead,) = job_runs(desk.engine, "sla_check")
    assert (dead["finished_at"], dead["outcome"]) == (None, None)
    nodes = two_nodes(desk, clock)
    try:
        with capture_logs() as lines:
            for node in nodes:
                node.scheduler.sla.pass_once()
        assert skipped(lines, "sla_check") == 2, "nobody runs the dead node's slot again"
        assert outbox_purposes(desk.engine) == [] and desk.ticket(number)["response_breached_at"] is None
        clock.now += dt.timedelta(seconds=desk.settings.sla.check_seconds)
        for node in nodes:
            node.scheduler.sla.pass_once()
        assert outbox_purposes(desk.engine) == ["sla_breach", "sla_breach", "sla_warning"]
        assert count_events(desk.engine, "sla_breach") == 1
        first, second = job_runs(desk.engine, "sla_check")
        assert first["finished_at"] is None and first["worker"] == dead["worker"]
        assert (second["outcome"], second["handled"]) == ("done", 1)
        assert second["worker"].split(":")[1] == str(os.getpid())
    finally:
        for node in nodes:
            node.close()


def test_two_nodes_sweep_once_per_slot_and_prune_old_runs(desk: Desk) -> None:
    number = desk.report()
    resolve(desk.engine, desk.ctx, number, now=XMAS_EVE)  # closes by itself on 30 Dec 16:30
    clock = Clock(at(31, 9))
    month_ago = clock.now - dt.timedelta(days=30)
    with desk.engine.begin() as conn:
        conn.execute(
            insert(job_run_table).values(
                job="sweep", slot_start=month_ago, node="old", worker="old:1:x", started_at=month_ago
            )
        )
    nodes = two_nodes(desk, clock)
    try:
        with capture_logs() as lines:
            at_once(*(node.scheduler.sweeper.pass_once for node in nodes))
        assert [line["ticket"] for line in lines if line["event"] == "auto_closed"] == [number]
        assert skipped(lines, "sweep") == 1
        assert desk.ticket(number)["status"] == "closed"
        assert count_events(desk.engine, "auto_closed") == 1
        (run,) = job_runs(desk.engine, "sweep")
        assert (run["slot_start"], run["handled"]) == (job_slot(clock.now, 300), 1), "the old row pruned"
        clock.now += dt.timedelta(minutes=5)
        nodes[1].scheduler.sweeper.pass_once()
        assert [r["handled"] for r in job_runs(desk.engine, "sweep")] == [1, 0]
    finally:
        for node in nodes:
            node.close()


class CountingPhone(FakePhoneProvider):
    """The fake provider, counting the reads of its Calls list (requests on the account's budget)."""

    list_reads = 0

    def list_calls_to(self, to: str, since: dt.datetime, limit: int = 1000) -> list[ListedCall]:
        self.list_reads += 1
        return super().list_calls_to(to, since, limit)


def test_two_nodes_read_twilios_call_list_once_per_slot(desk: Desk, tmp_path: Path) -> None:
    clock = Clock(dt.datetime.now(dt.UTC))
    missed = ListedCall(
        sid="CA" + "7" * 32,
        from_number=MOBILE_UNKNOWN,
        to=HOTLINE,
        status="no-answer",
        direction="inbound",
        start_time=clock.now - dt.timedelta(minutes=2),
        duration=0,
        caller_name=None,
    )
    phone = CountingPhone(listed_calls=[missed])
    nodes = two_nodes(desk, clock, phone, hotline_settings(tmp_path))
    try:
        with capture_logs() as lines:
            at_once(*(node.scheduler.hotline.pass_once for node in nodes if node.scheduler.hotline))
        assert skipped(lines, "hotline_reconcile") == 1
        assert phone.list_reads == 1, "one node read the list in this slot"
        with desk.engine.connect() as conn:
            assert conn.execute(select(call_table.c.call_sid)).scalars().all() == [missed.sid]
        clock.now += dt.timedelta(minutes=5)
        for node in nodes:
            assert node.scheduler.hotline is not None
            node.scheduler.hotline.pass_once()
        assert phone.list_reads == 2, "and once in the next"
        assert [r["handled"] for r in job_runs(desk.engine, "hotline_reconcile")] == [1, 0]
    finally:
        for node in nodes:
            node.close()
