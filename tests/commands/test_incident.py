"""``intaked incident link|unlink|show`` as an operator runs it (SQLite and PostgreSQL): the
links and their events, the listing, and refusals with a clear message and exit code 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from intaked.cli import main
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import ticket_event_table, ticket_table
from tests.paging.test_engine import new_ticket

CONFIG = """
[database]
url = "{url}"
[logging]
level = "warning"
"""
MAJOR, REPORT, OTHER = "IT-202612-00001", "IT-202612-00002", "IT-202612-00003"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    for number in (MAJOR, REPORT, OTHER):
        new_ticket(eng, number, subject=f"產線停工 {number[-1]}")
    yield eng
    eng.dispose()


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "intaked.toml"
    path.write_text(CONFIG.format(url=db_url), encoding="utf-8")
    return path


def incident(config: Path, *args: str) -> int:
    return main(["incident", *args, "--config", str(config)])


def linked_to(engine: Engine, number: str) -> str | None:
    with engine.connect() as conn:
        parent = ticket_table.alias()
        return conn.execute(
            select(parent.c.number)
            .join(ticket_table, ticket_table.c.major_incident_id == parent.c.id)
            .where(ticket_table.c.number == number)
        ).scalar()


def events_of(engine: Engine, number: str) -> list[tuple[str, dict[str, str]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(ticket_event_table.c.kind, ticket_event_table.c.detail)
            .join(ticket_table, ticket_table.c.id == ticket_event_table.c.ticket_id)
            .where(ticket_table.c.number == number)
            .order_by(ticket_event_table.c.id)
        ).all()
    return [(kind, json.loads(detail)) for kind, detail in rows]


def test_link_show_unlink(engine: Engine, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert incident(config, "link", REPORT, "--to", MAJOR, "--by", "chen") == 0
    assert capsys.readouterr().out == f"{REPORT} linked to {MAJOR}\n"
    assert linked_to(engine, REPORT) == MAJOR
    assert events_of(engine, REPORT) == [("linked_to_incident", {"ticket": MAJOR, "why": "linked by chen"})]
    assert events_of(engine, MAJOR) == [
        ("incident_report_linked", {"ticket": REPORT, "subject": "產線停工 2", "why": "linked by chen"})
    ]
    assert incident(config, "show", MAJOR) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{MAJOR}: new, 產線停工 1 (commander: none yet)"
    assert out[1] == "  1 linked ticket"
    assert out[2].startswith(f"  {REPORT}  new") and out[2].endswith("王小明: 產線停工 2")
    assert incident(config, "unlink", REPORT) == 0
    assert capsys.readouterr().out == f"{REPORT} unlinked from {MAJOR}\n"
    assert linked_to(engine, REPORT) is None
    assert events_of(engine, MAJOR)[-1] == ("incident_report_unlinked", {"ticket": REPORT, "by": "operator"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("link", "IT-209901-99999", "--to", MAJOR), "no ticket IT-209901-99999"),
        (("link", REPORT, "--to", "IT-209901-99999"), "no ticket IT-209901-99999"),
        (("link", MAJOR, "--to", MAJOR), f"cannot link {MAJOR} to itself"),
        (
            ("link", OTHER, "--to", REPORT),
            f"{REPORT} is itself linked to {MAJOR}: link {OTHER} to {MAJOR} instead",
        ),
        (
            ("link", MAJOR, "--to", OTHER),
            f"{MAJOR} is a major incident with 1 linked ticket: it cannot be linked",
        ),
        (("link", REPORT, "--to", OTHER), f"{REPORT} is linked to {MAJOR}: unlink it first"),
        (("unlink", OTHER), f"{OTHER} is not linked to a major incident"),
        (("unlink", "IT-209901-99999"), "no ticket IT-209901-99999"),
        (("show", "IT-209901-99999"), "no ticket IT-209901-99999"),
    ],
)
def test_refusals_say_why_and_exit_2(
    engine: Engine, config: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    assert incident(config, "link", REPORT, "--to", MAJOR) == 0
    capsys.readouterr()
    assert incident(config, *args) == 2
    assert capsys.readouterr().err == f"intaked: {message}\n"
    assert linked_to(engine, REPORT) == MAJOR and linked_to(engine, OTHER) is None
