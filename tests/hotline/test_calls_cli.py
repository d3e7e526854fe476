"""``intaked calls list`` as an operator runs it: the table, ``--json``, ``--since``, ``--limit``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, update

from intaked.cli import main
from intaked.commands.calls import excerpt, parse_since
from intaked.store.models import ticket_table
from tests.hotline.calls_support import make_call

TAIPEI = ZoneInfo("Asia/Taipei")


@pytest.fixture
def config(tmp_path: Path, engine: Engine, db_url: str) -> Path:
    path = tmp_path / "intaked.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[logging]\nlevel = "warning"\n', encoding="utf-8")
    return path


def calls(engine: Engine) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    transcript = "三樓的印表機卡紙了，麻煩回電給我，分機 1234，謝謝。Printer jammed on 3F, please call back."
    sids = {
        "voicemail": make_call(
            engine,
            number="IT-202611-00001",
            outcome="voicemail",
            started_at=now - dt.timedelta(minutes=10),
            duration_seconds=75,
            recording_sid="RE" + "1" * 32,
            recording_seconds=42,
            transcript=transcript,
            transcript_source="twilio",
            caller_name="LIN MEI",
        ),
        "missed": make_call(
            engine,
            number="IT-202611-00002",
            outcome="missed",
            started_at=now - dt.timedelta(minutes=5),
            duration_seconds=8,
            recording_error="16102",
        ),
        "desk": make_call(
            engine,
            number="IT-202611-00003",
            outcome="answered_by_desk",
            started_at=now - dt.timedelta(hours=3),
        ),
        "live": make_call(engine, number="IT-202611-00004", started_at=now - dt.timedelta(seconds=30)),
    }
    with engine.begin() as conn:
        conn.execute(
            update(ticket_table)
            .where(ticket_table.c.number.in_(["IT-202611-00001", "IT-202611-00002"]))
            .values(callback_requested=True)
        )
    return sids


def test_the_table_shows_each_call_with_its_ticket_outcome_and_voicemail(
    engine: Engine, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls(engine)
    assert main(["calls", "list", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("STARTED (Asia/Taipei)") and "CALL BACK" in lines[0]
    numbers = [line.split()[3] for line in lines[1:]]
    assert numbers == ["IT-202611-00004", "IT-202611-00002", "IT-202611-00001", "IT-202611-00003"]
    live, missed, voicemail, desk = lines[1:]
    assert "in progress" in live and "yes" not in live
    assert "missed" in missed and "16102" in missed and "0:08" in missed and missed.endswith(" yes")
    assert "voicemail" in voicemail and "0:42" in voicemail and "1:15" in voicemail and " yes " in voicemail
    assert "三樓的印表機卡紙了" in voicemail and voicemail.endswith("…")
    assert "answered by desk" in desk


def test_json_has_every_field_and_times_in_taipei(
    engine: Engine, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sids = calls(engine)
    assert main(["calls", "list", "--json", "--config", str(config)]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_sid = {row["call_sid"]: row for row in rows}
    voicemail = by_sid[sids["voicemail"]]
    assert voicemail["ticket"] == "IT-202611-00001"
    assert (voicemail["outcome"], voicemail["recording_seconds"], voicemail["duration_seconds"]) == (
        "voicemail",
        42,
        75,
    )
    assert voicemail["callback_requested"] is True and voicemail["caller_name"] == "LIN MEI"
    assert voicemail["transcript"].startswith("三樓") and voicemail["transcript_source"] == "twilio"
    assert voicemail["started_at"].endswith("+08:00")
    assert by_sid[sids["desk"]]["callback_requested"] is False
    assert by_sid[sids["missed"]]["recording_error"] == "16102"


def test_since_and_limit(engine: Engine, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sids = calls(engine)
    assert main(["calls", "list", "--json", "--since", "1h", "--config", str(config)]) == 0
    assert {row["call_sid"] for row in json.loads(capsys.readouterr().out)} == {
        sids["voicemail"],
        sids["missed"],
        sids["live"],
    }
    since = (dt.datetime.now(TAIPEI) - dt.timedelta(minutes=7)).replace(tzinfo=None).isoformat()
    assert main(["calls", "list", "--json", "--since", since, "--config", str(config)]) == 0  # naive: Taipei
    assert {row["call_sid"] for row in json.loads(capsys.readouterr().out)} == {sids["missed"], sids["live"]}
    assert main(["calls", "list", "--json", "--limit", "1", "--config", str(config)]) == 0
    assert [row["call_sid"] for row in json.loads(capsys.readouterr().out)] == [sids["live"]]
    assert main(["calls", "list", "--since", "yesterday-ish", "--config", str(config)]) == 2
    assert "--since" in capsys.readouterr().err


def test_no_calls(engine: Engine, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calls", "list", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == "no calls"


def test_since_parsing_and_excerpts() -> None:
    now = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
    assert parse_since("1h30m", TAIPEI, now) == now - dt.timedelta(minutes=90)
    assert parse_since("7d", TAIPEI, now) == now - dt.timedelta(days=7)
    assert parse_since("2026-11-22T09:00", TAIPEI) == dt.datetime(2026, 11, 22, 1, 0, tzinfo=dt.UTC)
    assert parse_since("2026-11-22T09:00+00:00", TAIPEI) == dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
    assert excerpt("a\nb  c") == "a b c" and excerpt(None) == ""
    assert excerpt("x" * 50, 10) == "x" * 9 + "…"
