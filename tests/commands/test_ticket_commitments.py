"""`intaked ticket commit|extend|escalate|show` as an operator runs them (the command line's own
entry point, in this process, on a real SQLite store): what they print, what they refuse (the
message and the exit code), and the ticket left unchanged by a refusal."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from intaked.store.models import ticket_table
from tests.sla.test_tracker import XMAS_EVE
from tests.support.cli_store import OneTicketStore

TEAMS = """
[teams.network]
email = "net@example.com"
lead_email = "net-lead@example.com"
"""


class Store(OneTicketStore):
    """A SQLite store with one ticket from a mail (filed 24 Dec 2026 16:00 in Taipei)."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path, config=TEAMS, subject="印表機卡紙", body="三樓", created_at=XMAS_EVE)

    def close_it(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(ticket_table).values(status="closed"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


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
