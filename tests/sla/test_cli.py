"""The working-time commands as an operator runs them: `intaked calendar ...`, `intaked sla ...`,
`intaked ticket triage|take|resolve`, `intaked sweep`; real processes on a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import ticket_table
from tests.sla.test_tracker import XMAS_EVE
from tests.support.daemon import make_settings


def intaked(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intaked", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path}/intaked.db"
    config = tmp_path / "intaked.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[logging]\nlevel = "warning"\n')
    engine = make_engine(url)
    upgrade(engine)
    raw = (
        "From: Lin <lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: 印表機卡紙\r\n"
        "Message-ID: <cli-1@example.com>\r\n\r\n三樓\r\n"
    ).encode()
    insert_items(engine, [RawItem("smtp", raw, envelope_from="lin@example.com")])
    process_once(engine, make_settings(url))
    with engine.begin() as conn:
        conn.execute(update(ticket_table).values(created_at=XMAS_EVE))
    engine.dispose()
    return config, _number(url)


def _number(url: str) -> str:
    from sqlalchemy import select

    engine = make_engine(url)
    with engine.connect() as conn:
        number = str(conn.execute(select(ticket_table.c.number)).scalar_one())
    engine.dispose()
    return number


def test_sla_deadlines_prints_the_worked_example(store: tuple[Path, str]) -> None:
    config, _ = store
    result = intaked(
        config, "sla", "deadlines", "--priority", "P3", "--start", "2026-12-24T16:00:00+08:00", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "response_due": "2026-12-28T11:00:00+08:00",
        "resolution_due": "2026-12-30T16:00:00+08:00",
    }


def test_sla_deadlines_refuses_a_time_without_offset(store: tuple[Path, str]) -> None:
    config, _ = store
    result = intaked(config, "sla", "deadlines", "--priority", "P3", "--start", "2026-12-24T16:00:00")
    assert result.returncode == 2 and "has no UTC offset" in result.stderr


def test_calendar_overrides_show_and_move_deadlines(store: tuple[Path, str]) -> None:
    config, number = store
    assert intaked(config, "ticket", "triage", number, "--priority", "P3", "--by", "Chen").returncode == 0
    added = intaked(config, "calendar", "add-holiday", "2026-12-28", "--name", "颱風假")
    assert added.returncode == 0 and "1 open ticket(s) got new deadlines" in added.stdout
    workday = intaked(config, "calendar", "add-workday", "2026-02-07", "--name", "補班")
    assert workday.returncode == 0
    shown = json.loads(intaked(config, "calendar", "show", "--year", "2026", "--json").stdout)
    assert {"date": "2026-12-28", "name": "颱風假"} in shown["non_working_days"]
    assert {"date": "2026-02-27", "name": "Peace Memorial Day (observed)"} in shown["non_working_days"]
    assert {"date": "2026-02-07", "name": "make-up working day: 補班"} in shown["extra_working_days"]
    explained = intaked(config, "sla", "explain", number)
    assert explained.returncode == 0
    assert "resolution  3d on the working clock from occurred_at" in explained.stdout
    assert "-> due 2026-12-31T16:00:00+08:00" in explained.stdout
    removed = intaked(config, "calendar", "remove", "2026-12-28")
    assert removed.returncode == 0
    again = intaked(config, "calendar", "remove", "2026-12-28")
    assert again.returncode == 1 and "no run-time override" in again.stderr
    bad = intaked(config, "calendar", "add-holiday", "2026-13-01", "--name", "x")
    assert bad.returncode == 2 and "'2026-13-01' is not a date" in bad.stderr


def test_take_resolve_and_sweep_with_now(store: tuple[Path, str]) -> None:
    config, number = store
    assert intaked(config, "ticket", "take", number, "--by", "Wang").returncode == 0
    resolved = intaked(config, "ticket", "resolve", number, "--note", "換了碳粉匣", "--by", "Wang")
    assert resolved.returncode == 0 and "closes by itself" in resolved.stdout
    dry = intaked(config, "sweep", "--now", "2099-01-01T00:00:00+00:00", "--dry-run", "--json")
    assert [t["number"] for t in json.loads(dry.stdout)] == [number]
    early = intaked(config, "sweep", "--now", "2020-01-01T00:00:00+00:00")
    assert early.returncode == 0 and "closed 0 ticket(s)" in early.stdout
    swept = intaked(config, "sweep", "--now", "2099-01-01T00:00:00+00:00")
    assert f"closed 1 ticket(s)\n  {number}" in swept.stdout
    assert intaked(config, "ticket", "resolve", number).returncode == 2


def test_unknown_ticket_exits_1(store: tuple[Path, str]) -> None:
    config, _ = store
    result = intaked(config, "ticket", "triage", "IT-209901-00001", "--priority", "P1")
    assert result.returncode == 1 and "no ticket IT-209901-00001" in result.stderr
