"""``intaked rules test`` and ``intaked directory lookup``: printed output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intaked.cli import main

OURS = "mx1.corp.example.com.tw"
CONFIG = f"""
[trust]
internal_domains = ["corp.example.com.tw"]
authserv_id = "{OURS}"

[directory]
path = "{{directory}}"

[[routing.rules]]
name = "production-down"
keywords = ["產線停工", "全廠"]
category = "incident"
team = "field_service_apac"
suggested_priority = "P1"

[[routing.rules]]
name = "how-to"
keywords = ["如何"]
category = "service_request"
suggested_priority = "P4"

[[routing.rules]]
name = "hotline-network"
channel = "phone"
hotline_choice = "3"
team = "network"
"""
PEOPLE = "name,email,mobile,department,site\n林美華,mei.lin@corp.example.com.tw,0912345678,製造部,Tainan\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    people = tmp_path / "people.csv"
    people.write_text(PEOPLE, encoding="utf-8")
    path = tmp_path / "intaked.toml"
    path.write_text(CONFIG.replace("{directory}", str(people)), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_text_from_outside_is_suggested_p1_but_not_trusted(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "rules",
        "test",
        "--config",
        str(config),
        "--text",
        "三廠產線停工了",
        "--from",
        "x@evil.example",
    )
    assert code == 0
    assert (
        "MATCH production-down: keyword '產線停工' in the subject or body"
        "  -> sets category, team, suggested_priority" in out
    )
    assert "no    how-to: no keyword in the subject or body" in out
    assert "suggested_priority  P1" in out and "(rule production-down)" in out
    assert "trusted: NO: From: domain 'evil.example' is not internal" in out
    assert "directory: no entry for the sender" in out


def test_eml_file_from_inside_with_our_mtas_pass_is_trusted(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    eml = tmp_path / "report.eml"
    eml.write_bytes(
        (
            f"Authentication-Results: {OURS}; dkim=pass header.d=corp.example.com.tw\r\n"
            "From: mei.lin@corp.example.com.tw\r\nSubject: =?UTF-8?B?5YWo5bug5YGc6Zu7?=\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n請協助\r\n"
        ).encode()
    )
    code, out, _ = run(capsys, "rules", "test", "--config", str(config), str(eml), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["facts"]["subject"] == "全廠停電"
    assert report["result"]["suggested_priority"] == {"value": "P1", "rule": "production-down"}
    assert report["trusted"] is True and "dkim=pass" in report["trust_reason"]
    assert report["directory"]["department"] == "製造部"
    assert report["directory"]["phones"] == ["+886912345678"]
    assert [r["matched"] for r in report["rules"]] == [True, False, False]
    code, text, _ = run(capsys, "rules", "test", "--config", str(config), str(eml))
    assert "trusted: yes: mx1.corp.example.com.tw: dkim=pass for corp.example.com.tw" in text
    assert "directory: 林美華  <mei.lin@corp.example.com.tw>  phones +886912345678" in text


def test_hotline_choice(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "rules",
        "test",
        "--config",
        str(config),
        "--text",
        "網路不通",
        "--hotline-choice",
        "3",
        "--from",
        "0912-345-678",
    )
    assert code == 0
    assert "channel: phone" in out and "MATCH hotline-network: channel is 'phone'; hotline choice '3'" in out
    assert "trusted: no (nothing suggested)" in out and "directory: 林美華" in out
    code, out, _ = run(
        capsys, "rules", "test", "--config", str(config), "--text", "救命", "--hotline-choice", "1"
    )
    assert "suggested_priority  P1" in out and "(rule hotline:emergency)" in out
    assert "trusted: yes: hotline emergency choice '1'" in out


def test_usage_errors_exit_2_and_a_missing_file_exits_1(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "rules", "test", "--config", str(config))
    assert code == 2 and "give FILE.eml or --text" in err
    code, _, err = run(
        capsys, "rules", "test", "--config", str(config), str(tmp_path / "x.eml"), "--text", "a"
    )
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "rules", "test", "--config", str(config), str(tmp_path / "absent.eml"))
    assert code == 1 and "no such file" in err


def test_without_rules_nothing_is_routed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    code, out, _ = run(capsys, "rules", "test", "--config", str(empty), "--text", "產線停工")
    assert code == 0 and "rules: none configured" in out and "suggested_priority  -" in out


def test_directory_lookup(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "directory", "lookup", "--config", str(config), "0912 345 678", "--json")
    assert code == 0 and json.loads(out)["email"] == "mei.lin@corp.example.com.tw"
    code, out, _ = run(capsys, "directory", "lookup", "--config", str(config), "MEI.LIN@corp.example.com.tw")
    assert code == 0 and "林美華" in out and "site Tainan" in out
    code, _, err = run(capsys, "directory", "lookup", "--config", str(config), "nobody@corp.example.com.tw")
    assert code == 1 and "no one in the directory" in err


def test_check_config_warns_about_a_missing_directory_and_untrusted_p1_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "intaked.toml"
    path.write_text(
        f'[directory]\npath = "{tmp_path / "absent.csv"}"\n'
        '[[routing.rules]]\nname = "p1"\nkeywords = ["產線停工"]\nsuggested_priority = "P1"\n',
        encoding="utf-8",
    )
    code, _, err = run(capsys, "check-config", "--config", str(path))
    assert code == 0
    assert "absent.csv' does not exist (yet)" in err
    assert "rules p1 suggest P1/P2 but trust.authserv_id or trust.internal_domains is empty" in err
