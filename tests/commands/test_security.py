"""`intaked security level|aware|notified|set|form` as an operator runs them (the command line's
``main`` in this process, on a real SQLite store; the CLI's subprocess tests are in
test_cli_commands.py): what they print, the form in Traditional Chinese as text, JSON and PDF, and
what they refuse (the message, exit code 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from intaked.store.models import outbox_table, security_form_table
from tests.security.conftest import FRIDAY_17
from tests.support.cli_store import OneTicketStore

CONFIG = """
[teams.security]
email = "soc@example.com"
[security.levels.4]
notify = ["director@example.com"]
"""
FIELDS = {
    "occurred_at": ("2026-12-04T16:30:00+08:00", "事件發生時間：2026年12月04日 16時30分"),
    "ip_address": ("203.0.113.7", "IP 位址 (IP Address)：203.0.113.7"),
    "url": ("https://www.example.gov.tw/", "網際網路位址 (Web-URL)：https://www.example.gov.tw/"),
    "brand_model": ("Dell R750", "設備廠牌、機型：Dell R750"),
    "os_version": ("Debian 12", "作業系統名稱、版本：Debian 12"),
    "protection": ("WAF、防毒", "已裝置之安全機制：WAF、防毒"),
    "incident_category": ("非法入侵", "事件分類：非法入侵"),
    "category_other": ("無", "事件分類 (其他)：無"),
    "damage": ("defacement", "破壞程度：網頁遭篡改"),
    "damage_other": ("無", "破壞程度 (其他)：無"),
    "description": ("首頁遭置換為不明文字", "事件說明：首頁遭置換為不明文字"),
    "impact": ("對外網站, 無個資外洩", "可能影響範圍及損失評估：對外網站, 無個資外洩"),
    "response": ("下線並由備份還原", "應變措施：下線並由備份還原"),
    "support": ("鑑識支援", "期望支援項目：鑑識支援"),
    "solution": ("修補外掛漏洞", "解決辦法：修補外掛漏洞"),
    "repaired_at": ("2026-12-05T09:00:00+08:00", "已修護時間：2026年12月05日 09時00分"),
}


class Store(OneTicketStore):
    """A SQLite store with one mailed report (Friday 4 Dec 2026 17:00 in Taipei); ``run`` is
    ``intaked security ...``."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(
            tmp_path, config=CONFIG, subject="網站遭篡改", body="首頁出現不明文字", created_at=FRIDAY_17
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return super().run("security", *args)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


def test_level_a_makes_it_a_level_4_incident_and_prints_the_clocks(store: Store) -> None:
    done = store.run("level", store.number, "--level", "A", "--by", "chen")
    assert done.returncode == 0, done.stderr
    assert "level:           4" in done.stdout
    assert "notify due:      2026-12-04T10:00:00+00:00" in done.stdout
    assert "contain due:     2026-12-05T21:00:00+00:00" in done.stdout  # 36 h, Saturday 05:00 Taipei
    with store.engine.connect() as conn:
        purposes = {r.purpose for r in conn.execute(select(outbox_table.c.purpose))}
    # set days after the report: both clocks are overdue at once
    assert purposes == {"ack", "security_team", "security_chain", "security_warning", "security_breach"}
    bad = store.run("level", store.number, "--level", "E")
    assert bad.returncode == 2 and "not a security level" in bad.stderr


def test_aware_and_notified_move_and_stop_the_clock(store: Store) -> None:
    store.run("level", store.number, "--level", "2")
    aware = store.run("aware", store.number, "--at", "2026-12-04T16:00:00+08:00")
    assert aware.returncode == 0 and "notify due:      2026-12-04T09:00:00+00:00" in aware.stdout
    notified = store.run("notified", store.number, "--at", "2026-12-04T16:40:00+08:00")
    assert notified.returncode == 0 and "notified at:     2026-12-04T08:40:00+00:00" in notified.stdout
    missing = store.run("notified", "IT-000000-00000", "--at", "2026-12-04T16:40:00+08:00")
    assert missing.returncode == 1 and "no ticket IT-000000-00000" in missing.stderr


def fill(store: Store) -> None:
    store.run("level", store.number, "--level", "3")
    for name, (value, _) in FIELDS.items():
        done = store.run("set", store.number, name, value)
        assert done.returncode == 0, (name, done.stderr)


def test_the_form_as_text_and_json_has_every_field(store: Store) -> None:
    fill(store)
    text = store.run("form", store.number)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "資通安全事件通報單" and f"編號：{store.number}" in lines
    assert "影響等級：第3級 (B): 系統停頓, 業務無法運作" in lines
    assert "知悉時間：2026年12月04日 17時00分" in lines
    for _, shown in FIELDS.values():
        assert shown in lines, shown
    doc = json.loads(store.run("form", store.number, "--format", "json").stdout)
    values = {field["name"]: field["value"] for field in doc["fields"]}
    assert values["level"] == 3
    assert values["incident_category"] == "intrusion" and values["damage"] == "defacement"
    assert values["occurred_at"] == "2026-12-04T08:30:00+00:00"
    assert {name: values[name] for name in ("description", "ip_address")} == {
        "description": "首頁遭置換為不明文字",
        "ip_address": "203.0.113.7",
    }
    assert set(values) == {"level", *FIELDS}


def test_the_form_as_pdf(store: Store, tmp_path: Path) -> None:
    fill(store)
    out = tmp_path / "form.pdf"
    done = store.run("form", store.number, "--format", "pdf", "--output", str(out))
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and b"/Type /Page" in data


def test_a_101_character_description_is_refused_and_nothing_written(store: Store) -> None:
    store.run("set", store.number, "description", "短")
    refused = store.run("set", store.number, "description", "字" * 101)
    assert refused.returncode == 2
    assert "description (事件說明) is 101 characters long; the form takes at most 100" in refused.stderr
    assert store.run("set", store.number, "description", "字" * 100).returncode == 0
    wrong = store.run("set", store.number, "damage", "爆炸")
    assert wrong.returncode == 2 and "damage: '爆炸' is not one of" in wrong.stderr
    with store.engine.connect() as conn:
        assert conn.execute(
            select(security_form_table.c.description, security_form_table.c.damage)
        ).one() == (
            "字" * 100,
            None,
        )
