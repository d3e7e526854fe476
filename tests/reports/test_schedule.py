"""When the scheduled reports are due (intaked/reports/schedule.py) and queuing them: the latest
period whose send time has passed, once per recipient whatever the number of looks; without
its chart when the chart cannot be drawn."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from intaked.reports.schedule import latest_period, queue_due_reports
from intaked.store.models import outbox_table
from tests.sla.test_tracker import Desk

TAIPEI = "Asia/Taipei"


def taipei(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone(dt.timedelta(hours=8))).astimezone(dt.UTC)


def test_weekly_is_the_iso_week_before_once_its_monday_send_time_passed() -> None:
    before = latest_period("weekly", (8, 0), TAIPEI, taipei(2026, 12, 7, 7, 59))  # Monday
    assert (before.label, before.first_day, before.last_day) == (
        "2026-W48",
        dt.date(2026, 11, 23),
        dt.date(2026, 11, 29),
    )
    after = latest_period("weekly", (8, 0), TAIPEI, taipei(2026, 12, 7, 8, 0))
    assert (after.label, after.first_day, after.last_day) == (
        "2026-W49",
        dt.date(2026, 11, 30),
        dt.date(2026, 12, 6),
    )
    assert after.send_after == taipei(2026, 12, 7, 8, 0)
    assert latest_period("weekly", (8, 0), TAIPEI, taipei(2026, 12, 13, 23, 0)).label == "2026-W49"
    new_year = latest_period("weekly", (0, 0), TAIPEI, taipei(2027, 1, 4, 0, 0))
    assert (new_year.label, new_year.first_day) == ("2026-W53", dt.date(2026, 12, 28))


def test_monthly_is_the_calendar_month_before_once_the_first_send_time_passed() -> None:
    before = latest_period("monthly", (8, 0), TAIPEI, taipei(2026, 12, 1, 7, 0))
    assert (before.label, before.first_day, before.last_day) == (
        "2026-10",
        dt.date(2026, 10, 1),
        dt.date(2026, 10, 31),
    )
    after = latest_period("monthly", (8, 0), TAIPEI, taipei(2026, 12, 1, 8, 0))
    assert (after.label, after.first_day, after.last_day) == (
        "2026-11",
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 30),
    )
    january = latest_period("monthly", (8, 0), TAIPEI, taipei(2027, 1, 15, 0, 0))
    assert (january.label, january.last_day) == ("2026-12", dt.date(2026, 12, 31))


@pytest.fixture
def desk(db_url: str) -> Iterator[Desk]:
    desk = Desk(
        db_url,
        reports={
            "weekly": {"recipients": ["boss@example.com", "qa@example.com"], "send_at": "08:00"},
            "monthly": {"recipients": ["boss@example.com"], "by": "priority"},
        },
        triage={"team": "network"},
        teams={"network": {"email": "net@example.com"}},
    )
    yield desk
    desk.engine.dispose()


def reports(desk: Desk) -> list[Any]:
    with desk.engine.connect() as conn:
        query = select(outbox_table).where(outbox_table.c.purpose == "report").order_by(outbox_table.c.id)
        return list(conn.execute(query).mappings())


def test_each_report_queued_once_per_recipient(desk: Desk) -> None:
    desk.report(created=taipei(2026, 12, 1, 10, 0))  # 2026-W49, December
    desk.report(created=taipei(2026, 11, 27, 10, 0))  # 2026-W48, November
    assert queue_due_reports(desk.engine, desk.settings, taipei(2026, 12, 7, 7, 0)) == 3  # W48 ×2, November
    assert queue_due_reports(desk.engine, desk.settings, taipei(2026, 12, 7, 7, 30)) == 0
    assert queue_due_reports(desk.engine, desk.settings, taipei(2026, 12, 7, 8, 0)) == 2  # W49 ×2
    assert queue_due_reports(desk.engine, desk.settings, taipei(2026, 12, 8, 8, 0)) == 0
    keys = [row["idempotency_key"] for row in reports(desk)]
    assert keys == [
        "report:weekly:2026-W48:boss@example.com",
        "report:weekly:2026-W48:qa@example.com",
        "report:monthly:2026-11:boss@example.com",
        "report:weekly:2026-W49:boss@example.com",
        "report:weekly:2026-W49:qa@example.com",
    ]
    w49 = json.loads(reports(desk)[3]["payload"])
    assert "2026-W49" in w49["subject"] and "2026-11-30" in w49["text"]
    assert "本期新增 / New: 1" in w49["text"]  # the ticket of 1 December


def test_a_chart_that_cannot_be_drawn_leaves_the_report_without_it(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault injected into matplotlib's drawing: the report is still queued, with every figure
    in its tables, no image and no reference to one; the log says why."""

    def broken(*_: Any, **__: Any) -> bytes:
        raise RuntimeError("no usable font")

    monkeypatch.setattr("intaked.reports.chart.render_png", broken)
    desk.report(created=taipei(2026, 12, 1, 10, 0))
    with capture_logs() as logs:
        assert queue_due_reports(desk.engine, desk.settings, taipei(2026, 12, 7, 8, 0)) == 3
    payload = json.loads(reports(desk)[0]["payload"])
    mail = email.message_from_bytes(base64.b64decode(payload["mime"]), policy=email.policy.default)
    assert [part.get_content_type() for part in mail.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    assert "cid:" not in payload["html"] and "本期新增 / New: 1" in payload["text"]
    failed = [e for e in logs if e["event"] == "report_chart_failed"]
    assert len(failed) == 2 and failed[0]["log_level"] == "error", "once per report (weekly, monthly)"
