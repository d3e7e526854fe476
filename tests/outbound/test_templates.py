"""Mail templates: an operator's ``acknowledgements.templates_dir`` overrides the templates it
holds and intaked's own fill in the rest (a directory with one changed template keeps working
when a release adds notices); config/templates/, the copy operators start from, is intaked's own."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from intaked.outbound.compose import BUILTIN_TEMPLATES, render_ack, render_notice

REPO = Path(__file__).resolve().parents[2]
TICKET = {
    "number": "IT-202612-00042",
    "subject": "印表機卡紙",
    "status": "new",
    "priority": None,
    "channel": "email",
}


def test_a_directory_with_one_changed_template_uses_intaked_s_for_the_others(tmp_path: Path) -> None:
    (tmp_path / "resolved.txt.j2").write_text("本處自訂：{{ ticket.number }} 已解決。\n", encoding="utf-8")
    context = {
        "ticket": TICKET,
        "requester_name": "林小姐",
        "note": "",
        "close_local": "2026-12-10 18:00 CST",
    }
    resolved = render_notice("resolved", context, str(tmp_path))
    assert resolved["text"] == "本處自訂：IT-202612-00042 已解決。\n", "the operator's text"
    assert resolved["subject"] == render_notice("resolved", context)["subject"], "intaked's subject"
    ack = render_ack(
        TICKET,
        requester_name="林小姐",
        received_at=dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC),
        timezone="Asia/Taipei",
        templates_dir=str(tmp_path),
    )
    assert "IT-202612-00042" in ack["subject"] and ack["html"], "the acknowledgement from intaked's own"


def test_the_copy_in_config_templates_is_intaked_s_own() -> None:
    copy = REPO / "config" / "templates"
    own = {path.name: path.read_bytes() for path in BUILTIN_TEMPLATES.glob("*.j2")}
    assert {path.name: path.read_bytes() for path in copy.glob("*.j2")} == own
