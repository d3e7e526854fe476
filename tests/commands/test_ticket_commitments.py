"""`intaked ticket commit|extend|escalate|show` as an operator runs them (the command line's own
entry point, in this process, on a real SQLite store): what they print, what they refuse (the
message and the exit code), and the ticket left unchanged by a refusal."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from intaked.cli import main
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import outbox_table, ticket_table
from tests.sla.test_tracker import XMAS_EVE
from tests.support.daemon import make_settings

CONFIG = """
[database]
url = "{url}"
[logging]
level = "warning"
[outbound_mail]
from_address = "helpdesk@example.com"
[teams.network]
email = "net@example.com"
lead_email = "net-lead@example.com"
"""


def intaked(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command as ``python -m intaked`` would, in this process (a start-up per command
    costs seconds on a slow machine): its exit code and what it printed."""
    out, err = io.StringIO(), io.StringIO()
    argv = [*args, "--config", str(config)]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refusing an argument
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


class Store:
    """A SQLite store with one ticket from a mail (filed 24 Dec 2026 16:00 in Taipei)."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path}/intaked.db"
        self.config = tmp_path / "intaked.toml"
        self.config.write_text(CONFIG.format(url=self.url))
        engine = make_engine(self.url)
        upgrade(engine)
        raw = (
            "From: Lin <lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: 印表機卡紙\r\n"
            "Message-ID: <cli-c1@example.com>\r\n\r\n三樓\r\n"
        ).encode()
        insert_items(engine, [RawItem("smtp", raw, envelope_from="lin@example.com")])
        process_once(engine, make_settings(self.url))
        with engine.begin() as conn:
            conn.execute(update(ticket_table).values(created_at=XMAS_EVE))
            self.number = str(conn.execute(select(ticket_table.c.number)).scalar_one())
        engine.dispose()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return intaked(self.config, *args)

    def ticket(self) -> dict[str, Any]:
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                return dict(conn.execute(select(ticket_table)).mappings().one())
        finally:
            engine.dispose()

    def outbox(self, purpose: str) -> list[dict[str, Any]]:
        engine = make_engine(self.url)
        try:
            with engine.connect() as conn:
                query = select(outbox_table).where(outbox_table.c.purpose == purpose)
                return [dict(row) for row in conn.execute(query).mappings()]
        finally:
            engine.dispose()

    def close_it(self) -> None:
        engine = make_engine(self.url)
        with engine.begin() as conn:
            conn.execute(update(ticket_table).values(status="closed"))
        engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


def refused(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, result.stderr
    assert message in result.stderr, result.stderr
    assert result.stdout == ""


COMMITMENTS = ("first_commitment_at", "commitment_at", "extension_count", "escalation_count", "status")


def snapshot(store: Store) -> tuple[Any, ...]:
    t = store.ticket()
    return tuple(t[key] for key in COMMITMENTS)


def test_commit_before_work_and_refused_after(store: Store) -> None:
    number = store.number
    assert store.run("ticket", "triage", number, "--priority", "P3", "--by", "Chen").returncode == 0
    done = store.run("ticket", "commit", number, "--at", "2099-03-02T12:00", "--by", "Chen")
    assert done.returncode == 0, done.stderr
    assert "standard time: 2026-12-30T16:00:00+08:00" in done.stdout
    assert "first commitment: 2099-03-02T12:00:00+08:00" in done.stdout, "no offset: tickets.timezone"
    assert "commitment: 2099-03-02T12:00:00+08:00" in done.stdout
    assert store.run("ticket", "take", number, "--by", "Wang").returncode == 0
    before = snapshot(store)
    late = store.run("ticket", "commit", number, "--at", "2099-03-09T12:00:00+08:00")
    refused(
        late, 2, "so its first commitment can no longer change (use `intaked ticket extend` or `escalate`)"
    )
    assert snapshot(store) == before


def test_extend_prints_mails_and_counts(store: Store) -> None:
    number = store.number
    assert store.run("ticket", "triage", number, "--priority", "P3", "--team", "network").returncode == 0
    done = store.run(
        "ticket", "extend", number, "--until", "2099-01-05T17:00", "--reason", "等料", "--by", "Wang"
    )
    assert done.returncode == 0, done.stderr
    assert "commitment: 2099-01-05T17:00:00+08:00" in done.stdout
    assert "extensions: 1, escalations: 0" in done.stdout and "mailed: lin@example.com" in done.stdout
    (notice,) = store.outbox("extension_notice")
    payload = json.loads(notice["payload"])
    assert "2099年1月5日（週一）17:00" in payload["text"] and "Mon 5 Jan 2099, 17:00" in payload["text"]
    shown = store.run("ticket", "show", number)
    assert shown.returncode == 0 and "commitment: 2099-01-05T17:00:00+08:00" in shown.stdout
    assert "first commitment: 2026-12-30T16:00:00+08:00" in shown.stdout
    refused(store.run("ticket", "show", "IT-209901-00001"), 1, "intaked: no ticket IT-209901-00001")
    detail = store.run("tickets", "show", number)
    assert "extension_count:" in detail.stdout and "commitment_at:" in detail.stdout


def test_extend_refusals(store: Store) -> None:
    number = store.number
    untriaged = store.run(
        "ticket", "extend", number, "--until", "2099-01-05T17:00", "--reason", "x", "--by", "W"
    )
    refused(untriaged, 2, f"intaked: {number} has no commitment yet: triage it")
    assert store.run("ticket", "triage", number, "--priority", "P3").returncode == 0
    before = snapshot(store)
    earlier = store.run(
        "ticket", "extend", number, "--until", "2026-12-29T12:00", "--reason", "x", "--by", "W"
    )
    refused(
        earlier,
        2,
        "intaked: the new commitment 2026-12-29T12:00:00+08:00 must be later than the current one,"
        " 2026-12-30T16:00:00+08:00",
    )
    bad = store.run("ticket", "extend", number, "--until", "2099-13-01", "--reason", "x", "--by", "W")
    refused(bad, 2, "argument --until: '2099-13-01' is not an ISO 8601 date and time")
    unknown = store.run(
        "ticket", "extend", "IT-209901-00001", "--until", "2099-01-05", "--reason", "x", "--by", "W"
    )
    refused(unknown, 1, "intaked: no ticket IT-209901-00001")
    store.close_it()
    closed = store.run(
        "ticket", "extend", number, "--until", "2099-01-05T17:00", "--reason", "x", "--by", "W"
    )
    refused(closed, 2, f"intaked: {number} is already closed")
    assert snapshot(store)[:4] == before[:4] and store.outbox("extension_notice") == []


def test_commit_refusals(store: Store) -> None:
    number = store.number
    bad = store.run("ticket", "commit", number, "--at", "tomorrow")
    refused(bad, 2, "argument --at: 'tomorrow' is not an ISO 8601 date and time")
    past = store.run("ticket", "commit", number, "--at", "2020-01-01T09:00")
    refused(past, 2, "intaked: 2020-01-01T09:00:00+08:00 is not in the future")
    refused(
        store.run("ticket", "commit", "IT-209901-00001", "--at", "2099-01-01"), 1, "no ticket IT-209901-00001"
    )
    store.close_it()
    refused(store.run("ticket", "commit", number, "--at", "2099-01-01"), 2, f"{number} is already closed")
    assert store.ticket()["first_commitment_at"] is None


def test_escalate_tells_the_team_lead_and_refuses_nobody(store: Store) -> None:
    number = store.number
    assert store.run("ticket", "triage", number, "--priority", "P3", "--team", "network").returncode == 0
    nobody = store.run("ticket", "escalate", number, "--to", "boss", "--reason", "x", "--by", "Wang")
    refused(nobody, 2, "intaked: no team or person named 'boss' (teams: network; people: none)")
    unknown = store.run(
        "ticket", "escalate", "IT-209901-00001", "--to", "network", "--reason", "x", "--by", "W"
    )
    refused(unknown, 1, "no ticket IT-209901-00001")
    earlier = store.run(
        "ticket", "escalate", number, "--to", "network", "--reason", "x", "--by", "W", "--until", "2026-12-29"
    )
    refused(earlier, 2, "must be later than the current one, 2026-12-30T16:00:00+08:00")
    bad = store.run(
        "ticket", "escalate", number, "--to", "network", "--reason", "x", "--by", "W", "--until", "soon"
    )
    refused(bad, 2, "argument --until: 'soon' is not an ISO 8601 date and time")
    assert store.ticket()["escalation_count"] == 0
    done = store.run("ticket", "escalate", number, "--to", "network", "--reason", "主管核准", "--by", "Wang")
    assert done.returncode == 0, done.stderr
    assert "extensions: 0, escalations: 1" in done.stdout and "mailed: net-lead@example.com" in done.stdout
    (notice,) = store.outbox("escalation_notice")
    assert (
        notice["recipient"] == "net-lead@example.com" and "主管核准" in json.loads(notice["payload"])["text"]
    )
    store.close_it()
    closed = store.run("ticket", "escalate", number, "--to", "network", "--reason", "x", "--by", "Wang")
    refused(closed, 2, f"{number} is already closed")
    assert store.ticket()["escalation_count"] == 1
