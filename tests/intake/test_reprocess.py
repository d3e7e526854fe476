"""`intaked reprocess NUMBER` re-parses stored raw mail in place: fixed fields, no duplicates."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intaked.cli import main
from intaked.intake.capture import RawItem, insert_items
from intaked.intake.parsepool import ParsePool
from intaked.intake.processor import process_once
from intaked.store.engine import make_engine
from intaked.store.migrate import upgrade
from intaked.store.models import attachment_table, message_table, ticket_event_table, ticket_table
from tests.support.daemon import make_settings
from tests.support.hostile import buggy_parse


def test_reprocess_repairs_what_a_buggy_parser_stored(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    msg = EmailMessage()
    msg["From"] = "王小明 <ming@example.com>"
    msg["Subject"] = "ERP 無法登入"
    msg["Message-ID"] = "<reparse-1@example.com>"
    msg.set_content("請協助")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="錯誤畫面.pdf")
    insert_items(engine, [RawItem("smtp", msg.as_bytes())])
    (outcome,) = process_once(engine, make_settings(db_url), ParsePool(0, 5, parse=buggy_parse))
    with engine.connect() as conn:
        assert conn.execute(select(ticket_table.c.subject)).scalar_one() == "ERP"
        assert conn.execute(select(func.count()).select_from(attachment_table)).scalar_one() == 0

    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n')
    assert main(["reprocess", outcome.ticket_number, "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{outcome.ticket_number}: re-parsed 1 message(s)" in out and "attachments 0 -> 1" in out

    with engine.connect() as conn:
        assert conn.execute(select(ticket_table.c.subject)).scalar_one() == "ERP 無法登入"
        assert conn.execute(select(message_table.c.subject)).scalar_one() == "ERP 無法登入"
        assert conn.execute(select(func.count()).select_from(message_table)).scalar_one() == 1
        assert conn.execute(select(attachment_table.c.filename)).scalar_one() == "錯誤畫面.pdf"
        kinds = [r.kind for r in conn.execute(select(ticket_event_table.c.kind).order_by("id"))]
    assert kinds == ["created", "ack_queued", "reprocessed"]
    assert main(["reprocess", outcome.ticket_number, "--config", str(config)]) == 0
    assert "nothing changed; attachments 1 -> 1" in capsys.readouterr().out, "running it twice is harmless"
    assert main(["reprocess", "IT-000000-00000", "--config", str(config)]) == 1
    engine.dispose()
