"""A P1/P2 that pages no one says so: `intaked check-config` warns about a paged priority without
an escalation policy, and a ticket that should page (triaged, or a trusted suggestion) gets a
``page_not_started`` event with the reason and an error in the log (real processes, real store)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select, update

from intaked.config import Settings
from intaked.paging.pages import start_pages_for_priorities
from intaked.paging.policy import missing_policy_reason
from intaked.store.models import page_table, ticket_event_table, ticket_table
from tests.paging.test_engine import CONFIG, T0, new_ticket
from tests.routing.test_ingest_routing import DIRECTORY, OUR_MTA, RULES, engine, ingest, raw_mail
from tests.sla.test_cli import store
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

__all__ = ["engine", "store"]


def intaked(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intaked", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_warns_about_each_paged_priority_without_a_policy(tmp_path: Path) -> None:
    config = tmp_path / "none.toml"
    config.write_text('[logging]\nlevel = "warning"\n')
    result = intaked(config, "check-config")
    assert result.returncode == 0, "a warning, not an error"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("# warning:")]
    assert any("[paging.policies.P1]" in w and "pages nobody" in w for w in warnings)
    assert any("[paging.policies.P2]" in w for w in warnings)

    one = tmp_path / "p1.toml"
    one.write_text(
        '[logging]\nlevel = "warning"\n[people.chen]\nphone = "+886911111111"\n'
        '[[paging.policies.P1.steps]]\ntargets = [{ person = "chen" }]\n'
    )
    result = intaked(one, "check-config")
    assert result.returncode == 0
    assert "[paging.policies.P1]" not in result.stderr and "[paging.policies.P2]" in result.stderr


def test_triaging_a_p1_without_a_policy_records_that_nobody_was_paged(store: tuple[Path, str]) -> None:
    config, number = store
    triaged = intaked(config, "ticket", "triage", number, "--priority", "P1", "--by", "Chen")
    assert triaged.returncode == 0, triaged.stderr
    log_lines = [json.loads(line) for line in triaged.stderr.splitlines() if line.startswith("{")]
    (error,) = [line for line in log_lines if line.get("event") == "page_not_started"]
    assert error["level"] == "error" and error["ticket"] == number

    shown = json.loads(intaked(config, "tickets", "show", number, "--json").stdout)
    (not_started,) = [e for e in shown["events"] if e["kind"] == "page_not_started"]
    detail = not_started["detail"]
    detail = json.loads(detail) if isinstance(detail, str) else detail
    assert detail["priority"] == "P1" and "[paging.policies.P1]" in detail["reason"]
    assert not_started["actor"] == "Chen"


def test_a_trusted_p1_by_mail_without_a_policy_records_that_nobody_was_paged(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    directory = tmp_path / "people.csv"
    directory.write_text(DIRECTORY, encoding="utf-8")
    settings: Settings = make_settings(
        db_url,
        routing={"rules": RULES},
        directory={"path": str(directory)},
        trust={"internal_domains": ["corp.example.com.tw"], "authserv_id": OUR_MTA},
        people=CONFIG["people"],
        oncall=CONFIG["oncall"],
        paging={"policies": {"P2": CONFIG["paging"]["policies"]["P1"]}},  # no P1 policy
    )
    raw = raw_mail(
        "mei.lin@corp.example.com.tw",
        "緊急",
        "三廠B棟產線停工，請立即協助",
        auth=[f"{OUR_MTA}; spf=pass smtp.mailfrom=mei.lin@corp.example.com.tw"],
    )
    ticket = ingest(engine, settings, raw, envelope_from="mei.lin@corp.example.com.tw")
    assert ticket["suggested_priority"] == "P1" and ticket["suggestion_trusted"] is True
    with engine.connect() as conn:
        assert conn.execute(select(page_table)).first() is None
        details = (
            conn.execute(
                select(ticket_event_table.c.detail).where(
                    ticket_event_table.c.ticket_id == ticket["id"],
                    ticket_event_table.c.kind == "page_not_started",
                )
            )
            .scalars()
            .all()
        )
    (detail,) = [json.loads(d) for d in details]
    assert detail["priority"] == "P1" and "pages nobody" in detail["reason"]


def test_a_p1_written_by_another_tool_without_a_policy_is_recorded_once(engine: Engine, db_url: str) -> None:
    settings = make_settings(
        db_url,
        people=CONFIG["people"],
        oncall=CONFIG["oncall"],
        paging={"policies": {"P2": CONFIG["paging"]["policies"]["P2"]}},  # no P1 policy
    )
    ticket_id = new_ticket(engine)
    with engine.begin() as conn:
        conn.execute(update(ticket_table).where(ticket_table.c.id == ticket_id).values(priority="P1"))
    assert start_pages_for_priorities(engine, settings, T0) == 0
    start_pages_for_priorities(engine, settings, T0)
    with engine.connect() as conn:
        details = (
            conn.execute(
                select(ticket_event_table.c.detail).where(
                    ticket_event_table.c.ticket_id == ticket_id,
                    ticket_event_table.c.kind == "page_not_started",
                )
            )
            .scalars()
            .all()
        )
    (detail,) = [json.loads(d) for d in details]
    assert detail == {"priority": "P1", "reason": missing_policy_reason("P1")}


def test_a_daemon_without_any_policy_still_says_a_tool_written_p1_paged_nobody(db_url: str) -> None:
    """No ``[paging.policies]`` at all (a site that never set paging up): the running daemon still
    notices a P1 another tool wrote and records that it paged nobody."""
    daemon = DaemonThread(make_settings(db_url)).start()
    try:
        ticket_id = new_ticket(daemon.engine)
        with daemon.engine.begin() as conn:
            conn.execute(update(ticket_table).where(ticket_table.c.id == ticket_id).values(priority="P1"))

        def not_started() -> list[str]:
            with daemon.engine.connect() as conn:
                return list(
                    conn.execute(
                        select(ticket_event_table.c.detail).where(
                            ticket_event_table.c.ticket_id == ticket_id,
                            ticket_event_table.c.kind == "page_not_started",
                        )
                    ).scalars()
                )

        (detail,) = wait_until(not_started, timeout=30, what="page_not_started on the tool-written P1")
        assert json.loads(detail) == {"priority": "P1", "reason": missing_policy_reason("P1")}
    finally:
        daemon.stop()
