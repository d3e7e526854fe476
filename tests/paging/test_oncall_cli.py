"""``intaked oncall ...`` as an operator runs it: output, overrides, and usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intaked.cli import main

CONFIG = """
[database]
url = "{url}"
[logging]
level = "warning"
[people.chen]
display_name = "陳志明"
phone = "+886912345678"
email = "chen@example.com"
[people.lin]
phone = "+886912345679"
[people.wang]
phone = "+886912345680"
[people.zhang]
phone = "+886912345681"
[people.huang]
phone = "+886912345682"
[oncall.qrc_duty]
people = ["chen", "lin", "wang"]
start = 2026-11-02
handoff_weekday = "monday"
[oncall.qrc_director]
people = ["huang"]
[oncall.berlin]
timezone = "Europe/Berlin"
people = ["lin", "wang"]
shift = "1d"
handoff_time = "08:00"
start = 2026-11-02
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "intaked.toml"
    path.write_text(CONFIG.format(url=f"sqlite:///{tmp_path / 'intaked.db'}"), encoding="utf-8")
    return path


def oncall(config: Path, *args: str) -> int:
    return main(["oncall", *args, "--config", str(config)])


def test_now_shows_every_schedule(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert oncall(config, "now", "--at", "2026-11-23T09:00") == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "berlin: wang [rotation]",
        "  since 2026-11-23 Mon 08:00+0100",
        "  until 2026-11-24 Tue 08:00+0100, then lin",
        "qrc_director: huang [rotation]",
        "  since 2026-11-23 Mon 09:00+0800",
        "  until 2026-11-30 Mon 09:00+0800, then huang",
        "qrc_duty: chen (陳志明) [rotation]",
        "  since 2026-11-23 Mon 09:00+0800",
        "  until 2026-11-30 Mon 09:00+0800, then lin",
    ]


def test_now_without_offset_reads_the_schedules_time_zone(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert oncall(config, "now", "--schedule", "qrc_duty", "--at", "2026-11-23T08:59:59", "--json") == 0
    (duty,) = json.loads(capsys.readouterr().out)
    assert (duty["person"], duty["next_person"], duty["until"]) == (
        "wang",
        "chen",
        "2026-11-23T09:00:00+08:00",
    )
    assert oncall(config, "now", "--schedule", "qrc_duty", "--at", "2026-11-23T01:00:00Z", "--json") == 0
    (duty,) = json.loads(capsys.readouterr().out)
    assert (duty["person"], duty["source"], duty["phone"]) == ("chen", "rotation", "+886912345678")


def test_override_add_list_now_and_remove(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        oncall(
            config,
            "override",
            "--schedule",
            "qrc_duty",
            "--person",
            "zhang",
            "--from",
            "2099-12-01T00:00",
            "--to",
            "2099-12-02T00:00+08:00",
            "--replaces",
            "chen",
            "--note",
            "chen is on leave",
            "--by",
            "mei",
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("override 1: zhang holds qrc_duty (instead of chen) from 2099-12-01 Tue 00:00+0800")

    assert oncall(config, "overrides") == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["ID", "SCHEDULE", "PERSON", "REPLACES", "FROM", "TO", "BY", "/", "NOTE"]
    assert listing[1].split()[:4] == ["1", "qrc_duty", "zhang", "chen"]
    assert listing[1].endswith("mei / chen is on leave")

    assert oncall(config, "overrides", "--schedule", "qrc_duty", "--json") == 0
    (stored,) = json.loads(capsys.readouterr().out)
    assert stored["starts_at"] == "2099-12-01T00:00:00+08:00" and stored["replaces"] == "chen"

    # 2099-12-01 is in a week of chen's (the rotation is periodic), so the override applies
    assert oncall(config, "now", "--schedule", "qrc_duty", "--at", "2099-12-01T12:00") == 0
    now = capsys.readouterr().out.splitlines()
    assert now[0] == "qrc_duty: zhang [override #1, instead of chen]"
    assert now[2] == "  until 2099-12-02 Wed 00:00+0800, then chen (陳志明)"

    assert oncall(config, "remove-override", "1") == 0
    assert capsys.readouterr().out == "override 1 removed\n"
    assert oncall(config, "remove-override", "1") == 1
    assert "no override 1" in capsys.readouterr().err
    assert oncall(config, "overrides") == 0
    assert capsys.readouterr().out == "no current or future overrides\n"


def test_show_lists_the_upcoming_shifts(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        oncall(
            config,
            *("override", "--schedule", "qrc_duty", "--person", "huang"),
            *("--from", "2026-11-28T18:00", "--to", "2026-11-30T09:00"),
        )
        == 0
    )
    capsys.readouterr()
    assert oncall(config, "show", "--schedule", "qrc_duty", "--from", "2026-11-23T12:00", "--days", "14") == 0
    assert capsys.readouterr().out.splitlines() == [
        "qrc_duty (Asia/Taipei), 14 day(s) from 2026-11-23 Mon 12:00+0800",
        "  2026-11-23 Mon 09:00+0800 -> 2026-11-28 Sat 18:00+0800  chen (陳志明) [rotation]",
        "  2026-11-28 Sat 18:00+0800 -> 2026-11-30 Mon 09:00+0800  huang [override #1, instead of chen]",
        "  2026-11-30 Mon 09:00+0800 -> 2026-12-07 Mon 09:00+0800  lin [rotation]",
        "  2026-12-07 Mon 09:00+0800 -> 2026-12-14 Mon 09:00+0800  wang [rotation]",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "override",
                "--schedule",
                "qrc_night",
                "--person",
                "lin",
                "--from",
                "2026-11-24",
                "--to",
                "2026-11-25",
            ],
            "no on-call schedule named 'qrc_night' (defined: berlin, qrc_director, qrc_duty)",
        ),
        (
            [
                "override",
                "--schedule",
                "qrc_duty",
                "--person",
                "bob",
                "--from",
                "2026-11-24",
                "--to",
                "2026-11-25",
            ],
            "--person bob: no person named 'bob'",
        ),
        (
            [
                *("override", "--schedule", "qrc_duty", "--person", "lin"),
                *("--from", "2026-11-24", "--to", "2026-11-25", "--replaces", "huang"),
            ],
            "--replaces huang: 'huang' is not in the rotation of 'qrc_duty'",
        ),
        (
            [
                "override",
                "--schedule",
                "qrc_duty",
                "--person",
                "lin",
                "--from",
                "2026-11-25",
                "--to",
                "2026-11-24",
            ],
            "--to 2026-11-24 Tue 00:00+0800 is not after --from 2026-11-25 Wed 00:00+0800",
        ),
        (
            [
                *("override", "--schedule", "qrc_duty", "--person", "lin"),
                *("--from", "2026-11-25T09:00+08:00", "--to", "2026-11-25T01:00Z"),
            ],
            "is not after --from",
        ),
        (["now", "--schedule", "qrc_night"], "no on-call schedule named 'qrc_night'"),
        (["show", "--schedule", "qrc_night"], "no on-call schedule named 'qrc_night'"),
    ],
)
def test_usage_errors_exit_2_with_the_reason(
    config: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert oncall(config, *args) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert oncall(config, "overrides", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [], "nothing was stored"


def test_a_bad_time_is_an_argparse_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        oncall(
            config, "override", "--schedule", "qrc_duty", "--person", "lin", "--from", "tomorrow", "--to", "x"
        )
    assert exited.value.code == 2
    assert "'tomorrow' is not an ISO 8601 date and time" in capsys.readouterr().err


def test_override_without_a_schedule_means_the_duty_commanders(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``intaked oncall override --person NAME --from ISO --to ISO``, as operators type it."""
    args = ("override", "--person", "zhang", "--from", "2099-12-01T00:00", "--to", "2099-12-02T00:00")
    assert oncall(config, *args) == 2
    assert "several on-call schedules (berlin, qrc_director, qrc_duty): name one with --schedule" in (
        capsys.readouterr().err
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text + '[[paging.policies.P1.steps]]\ntargets = [{ oncall = "qrc_duty" }]\n', encoding="utf-8"
    )
    assert oncall(config, *args) == 0
    assert capsys.readouterr().out.startswith("override 1: zhang holds qrc_duty")
