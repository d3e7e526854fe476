"""The scheduler's ``reports`` job (intaked/scheduler.py): two nodes on one database, on a clock
the test sets, look for due reports at the same instant; one of them queues the week's report
once per recipient, and neither queues it again in later slots; the next week's is due on its
Monday at the send time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from intaked.store.models import outbox_table
from tests.scheduler.test_job_slots import Clock, at_once, job_runs, two_nodes
from tests.sla.test_tracker import Desk

RECIPIENTS = ["boss@example.com", "qa@example.com"]


def taipei(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone(dt.timedelta(hours=8))).astimezone(dt.UTC)


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    weekly = {"recipients": RECIPIENTS, "send_at": "08:00"}
    desk = Desk(db_url, reports={"check_seconds": 60, "weekly": weekly})
    yield desk
    desk.engine.dispose()


def report_keys(desk: Desk) -> list[Any]:
    with desk.engine.connect() as conn:
        query = select(outbox_table.c.idempotency_key).where(outbox_table.c.purpose == "report")
        return sorted(conn.execute(query).scalars())


def test_two_nodes_queue_the_weekly_report_once(desk: Desk) -> None:
    desk.report(created=taipei(2026, 12, 1, 9, 0))
    clock = Clock(taipei(2026, 12, 7, 7, 30))  # Monday, before 08:00: the week before last is due
    nodes = two_nodes(desk, clock)
    try:
        for node in nodes:
            assert node.scheduler.reports is not None
        at_once(*(node.scheduler.reports.pass_once for node in nodes if node.scheduler.reports))
        w48 = [f"report:weekly:2026-W48:{r}" for r in RECIPIENTS]
        assert report_keys(desk) == w48
        assert sorted(node.queued for node in nodes) == [0, 1], "one node queued, and woke its senders"
        (run,) = job_runs(desk.engine, "reports")
        assert (run["outcome"], run["handled"]) == ("done", 2)

        clock.now = taipei(2026, 12, 7, 7, 45)  # a later slot: nothing new is due
        for node in nodes:
            assert node.scheduler.reports is not None
            node.scheduler.reports.pass_once()
        assert report_keys(desk) == w48
        assert [r["handled"] for r in job_runs(desk.engine, "reports")] == [2, 0]

        clock.now = taipei(2026, 12, 7, 8, 0)  # last week's report is due
        for node in reversed(nodes):
            assert node.scheduler.reports is not None
            node.scheduler.reports.pass_once()
        assert report_keys(desk) == sorted(w48 + [f"report:weekly:2026-W49:{r}" for r in RECIPIENTS])
    finally:
        for node in nodes:
            node.close()


def test_no_job_without_recipients(db_url: str) -> None:
    desk = Desk(db_url)
    nodes = two_nodes(desk, Clock(taipei(2026, 12, 7, 9, 0)))
    try:
        assert [node.scheduler.reports for node in nodes] == [None, None]
    finally:
        for node in nodes:
            node.close()
        desk.engine.dispose()
