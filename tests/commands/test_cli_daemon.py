"""The real command: `intaked run` with no config takes mail; `intaked tickets` shows it; SIGTERM drains."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.waiting import wait_until

INTAKED = [sys.executable, "-m", "intaked"]


def clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INTAKED_") and k not in ("XDG_STATE_HOME", "STATE_DIRECTORY", "NOTIFY_SOCKET")
    }
    env["HOME"] = str(home)
    return env


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def default_daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    if Path("/etc/intaked/intaked.toml").exists():
        pytest.skip("/etc/intaked/intaked.toml exists on this machine: `intaked run` would read it")
    if port_open(2525):
        pytest.skip("127.0.0.1:2525 is taken by another process")
    env = clean_env(tmp_path)
    log_path = tmp_path / "intaked.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*INTAKED, "run"], env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: port_open(2525) or proc.poll() is not None, timeout=30, what="the listener")
        if proc.poll() is not None:
            raise AssertionError(f"intaked run exited: {log_path.read_text()}")
        yield proc, env
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def report(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"陳美玲 <mei{n}@example.com>"
    msg["To"] = "helpdesk@localhost"
    msg["Subject"] = f"VPN 連不上 #{n}"
    msg["Message-ID"] = f"<vpn-{n}@example.com>"
    msg.set_content("從家裡連 VPN 一直逾時。")
    return msg


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*INTAKED, *args], env=env, capture_output=True, text=True, timeout=60)


def test_fresh_intaked_run_files_mail_and_tickets_list_shows_it(
    default_daemon: tuple[subprocess.Popen[bytes], dict[str, str]], tmp_path: Path
) -> None:
    proc, env = default_daemon
    with smtplib.SMTP("127.0.0.1", 2525) as client:
        client.send_message(report(1))

    def listed() -> list[dict[str, str]]:
        out = run_cli(env, "tickets", "list", "--json")
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []

    (ticket,) = wait_until(listed, timeout=20, what="the ticket in `tickets list`")
    assert ticket["subject"] == "VPN 連不上 #1"
    assert ticket["requester_email"] == "mei1@example.com"
    assert ticket["requester_name"] == "陳美玲"
    table = run_cli(env, "tickets", "list")
    assert table.returncode == 0
    assert (
        ticket["number"] in table.stdout
        and "VPN 連不上 #1" in table.stdout
        and "mei1@example.com" in table.stdout
    )

    shown = run_cli(env, "tickets", "show", ticket["number"])
    assert shown.returncode == 0
    assert "從家裡連 VPN 一直逾時。" in shown.stdout and "Message-ID: <vpn-1@example.com>" in shown.stdout
    assert run_cli(env, "tickets", "show", "IT-000000-00000").returncode == 1
    assert (tmp_path / ".local" / "state" / "intaked" / "intaked.db").exists(), "the embedded database"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = (tmp_path / "intaked.log").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert "smtp_intake_listening" in events and "ticket_created" in events and events[-1] == "stopped"
    created = next(line for line in lines if line["event"] == "ticket_created")
    assert created["ticket"] == ticket["number"] and created["message_id"] == "vpn-1@example.com"


def test_sigterm_drains_every_accepted_message_into_a_ticket(
    default_daemon: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    proc, env = default_daemon
    accepted = 0
    with smtplib.SMTP("127.0.0.1", 2525) as client:
        for n in range(40):
            client.send_message(report(n))
            accepted += 1
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises((smtplib.SMTPException, OSError)):
            for n in range(40, 60):  # after the signal: refused or hung up, never a silent 250
                client.send_message(report(n))
                accepted += 1
    assert proc.wait(timeout=30) == 0
    tickets = json.loads(run_cli(env, "tickets", "list", "--json", "--limit", "1000").stdout)
    assert len(tickets) == accepted, "every message that got a 250 is a ticket, none more"


def test_run_refuses_to_start_with_a_clear_answer(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text('[smtp_intake]\nlisten = "nowhere"\n')
    result = run_cli(env, "run", "--config", str(bad))
    assert result.returncode == 78
    assert 'smtp_intake.listen: expected "host:port"' in result.stderr

    down = tmp_path / "down.toml"
    down.write_text(
        '[database]\nurl = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n'
        '[smtp_intake]\nlisten = "127.0.0.1:0"\n[logging]\nformat = "json"\n'
    )
    result = run_cli(env, "run", "--config", str(down))
    assert result.returncode == 69, "the store is unreachable: systemd restarts us later"
    failure = [json.loads(line) for line in result.stderr.splitlines() if '"startup_failed"' in line]
    assert failure and "Connection refused" in failure[0]["error"]

    db = tmp_path / "new.db"
    newer = tmp_path / "newer.toml"
    newer.write_text(
        f'[database]\nurl = "sqlite:///{db}"\n'
        '[smtp_intake]\nlisten = "127.0.0.1:0"\n[logging]\nformat = "json"\n'
    )
    assert run_cli(env, "db", "upgrade", "--config", str(newer)).returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    result = run_cli(env, "run", "--config", str(newer))
    assert result.returncode == 69
    assert "which this intaked does not know" in result.stderr
