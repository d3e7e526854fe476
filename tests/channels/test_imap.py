"""The IMAP channel against a real Dovecot: IDLE, polling, move only after commit, UIDVALIDITY,
dropped connections, refused logins and TLS, duplicates across channels."""

from __future__ import annotations

import smtplib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from intaked.channels.imapstate import mailbox_status
from intaked.cli import main
from intaked.store.models import imap_mailbox_table, inbound_item_table, message_table
from tests.support.daemon import DaemonThread, make_settings
from tests.support.dovecot import FULL_CAPABILITIES, PASSWORD, USER, Dovecot, dovecot_unavailable_reason
from tests.support.faultproxy import FaultProxy
from tests.support.waiting import wait_until


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if reason := dovecot_unavailable_reason():
        pytest.skip(reason)
    with Dovecot() as server:
        yield server


def report(n: int, *, message_id: str | None = None, size: int = 0) -> bytes:
    mid = message_id or f"imap-{n}@example.com"
    filler = ("這是填充內容。" * (size // 21 + 1))[: size // 3] if size else "印表機卡紙。"
    return (
        f"From: 林小姐 <lin{n}@example.com>\r\nTo: {USER}\r\nSubject: 問題 {n}\r\nMessage-ID: <{mid}>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{filler}\r\n"
    ).encode()


def imap(server: Dovecot, **overrides: Any) -> dict[str, Any]:
    mailbox = {
        "name": "helpdesk",
        "host": "127.0.0.1",
        "port": server.port,
        "tls": "none",
        "username": USER,
        "password": PASSWORD,
        "poll_seconds": 0.5,
        "reconnect_max_seconds": 0.5,
        "auth_retry_seconds": 0.5,
        "timeout_seconds": 10,
    }
    mailbox.update(overrides)
    return mailbox


def start(url: str, *mailboxes: dict[str, Any]) -> DaemonThread:
    return DaemonThread(make_settings(url, imap=list(mailboxes))).start()


def subjects(daemon: DaemonThread) -> list[str]:
    with daemon.engine.connect() as conn:
        return sorted(r.subject for r in conn.execute(select(message_table.c.subject)))


def count_messages(daemon: DaemonThread) -> int:
    with daemon.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(message_table)).scalar_one())


def test_idle_picks_up_new_mail_moves_it_and_leaves_it_unread(
    db_url: str, dovecot: Dovecot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = start(db_url, imap(dovecot))
    try:
        wait_until(
            lambda: dovecot.count("Processed") == 0 and mailbox_status(daemon.engine), what="first pass"
        )
        dovecot.append([report(1), report(2)])
        wait_until(lambda: count_messages(daemon) == 2, what="two tickets")
        assert subjects(daemon) == ["問題 1", "問題 2"]
        wait_until(lambda: dovecot.count("INBOX") == 0, what="INBOX drained")
        assert dovecot.count("Processed") == 2
        with dovecot.client() as client:
            client.select_folder("Processed", readonly=True)
            flags = client.get_flags(client.search("ALL"))
        assert all(b"\\Seen" not in f for f in flags.values()), "fetched with BODY.PEEK[]"
        status = mailbox_status(daemon.engine)["helpdesk"]
        assert status["last_uid"] == 2 and status["backlog"] == 0 and status["last_poll_at"] is not None
        with daemon.engine.connect() as conn:
            refs = sorted(r.source_ref for r in conn.execute(select(inbound_item_table.c.source_ref)))
        uidvalidity = status["uidvalidity"]
        assert refs == [f"imap:helpdesk:{uidvalidity}:1", f"imap:helpdesk:{uidvalidity}:2"]
        config = tmp_path / "c.toml"
        config.write_text(
            f'[database]\nurl = "{db_url}"\n[imap]\nname = "helpdesk"\nhost = "127.0.0.1"\n'
            f'port = {dovecot.port}\ntls = "none"\nusername = "{USER}"\n'
        )
        assert main(["imap", "status", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert f"helpdesk: {USER}@127.0.0.1:{dovecot.port}/INBOX" in out
        assert f"UIDVALIDITY {uidvalidity}, last committed UID 2, backlog 0" in out
        assert "last successful poll: 20" in out
    finally:
        daemon.stop()


def test_polling_when_the_server_has_no_idle(sqlite_url: str) -> None:
    if reason := dovecot_unavailable_reason():
        pytest.skip(reason)
    with Dovecot(capabilities=FULL_CAPABILITIES.replace(" IDLE", "")) as server:
        daemon = start(sqlite_url, imap(server))
        try:
            server.append([report(1)])
            wait_until(lambda: count_messages(daemon) == 1, what="the ticket by polling")
            wait_until(lambda: server.count("INBOX") == 0, what="INBOX drained")
        finally:
            daemon.stop()


def test_copy_and_expunge_when_the_server_has_no_move(sqlite_url: str) -> None:
    if reason := dovecot_unavailable_reason():
        pytest.skip(reason)
    with Dovecot(capabilities=FULL_CAPABILITIES.replace(" MOVE", "")) as server:
        server.append([report(1), report(2), report(3)])
        daemon = start(sqlite_url, imap(server))
        try:
            wait_until(lambda: server.count("Processed") == 3, what="three copied")
            wait_until(lambda: server.count("INBOX") == 0, what="INBOX expunged")
            wait_until(lambda: count_messages(daemon) == 3, what="three tickets")
        finally:
            daemon.stop()


def test_nothing_moves_until_the_ticket_is_committed(sqlite_url: str, dovecot: Dovecot) -> None:
    dovecot.append([report(1)])
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    daemon = start(sqlite_url, imap(dovecot))
    try:
        locker.execute("BEGIN EXCLUSIVE")  # the store cannot commit
        worker = daemon.daemon.imap_workers[0]
        wait_until(lambda: "locked" in (worker.last_error or ""), timeout=20, what="a failed commit")
        assert dovecot.count("INBOX") == 1 and dovecot.count("Processed") == 0
        locker.execute("ROLLBACK")
        wait_until(lambda: dovecot.count("Processed") == 1, timeout=20, what="the move after the commit")
        wait_until(lambda: count_messages(daemon) == 1, what="the ticket")
        assert dovecot.count("INBOX") == 0
    finally:
        locker.close()
        daemon.stop()


def test_changed_uidvalidity_rescans_without_duplicates(db_url: str, dovecot: Dovecot) -> None:
    messages = [report(n) for n in range(5)]
    dovecot.append(messages, folder="Intake")
    daemon = start(db_url, imap(dovecot, folder="Intake"))
    try:
        wait_until(lambda: count_messages(daemon) == 5 and dovecot.count("Intake") == 0, what="first drain")
        before = mailbox_status(daemon.engine)["helpdesk"]["uidvalidity"]
        daemon.daemon.imap_workers[0].stop.set()  # pause the worker while the folder is recreated
        daemon.daemon.imap_workers[0].join(20)
        with dovecot.client() as client:
            client.delete_folder("Intake")
            client.create_folder("Intake")
        dovecot.append([*messages, report(99)], folder="Intake")  # the same five again, and a new one
        worker = daemon.daemon.imap_workers[0]
        worker.stop.clear()
        worker.start()
        wait_until(lambda: dovecot.count("Intake") == 0, timeout=30, what="second drain")
        wait_until(lambda: count_messages(daemon) == 6, what="only the new message stored")
        after = mailbox_status(daemon.engine)["helpdesk"]
        assert after["uidvalidity"] != before
        with daemon.engine.connect() as conn:
            states = sorted(r.state for r in conn.execute(select(inbound_item_table.c.state)))
        assert states == ["done"] * 6 + ["duplicate"] * 5
    finally:
        daemon.stop()


def test_connection_dropped_mid_fetch_loses_and_doubles_nothing(sqlite_url: str, dovecot: Dovecot) -> None:
    dovecot.append([report(n, size=6000) for n in range(40)])
    with FaultProxy("127.0.0.1", dovecot.port) as proxy:
        proxy.cut_after(60_000, times=3)  # the first three connections die in the middle of a FETCH
        daemon = start(sqlite_url, imap(dovecot, port=proxy.port, fetch_batch=10))
        try:
            wait_until(lambda: dovecot.count("INBOX") == 0, timeout=60, what="INBOX drained")
            wait_until(lambda: daemon.pending_items() == 0, what="processing")
            assert count_messages(daemon) == 40
            assert proxy.cuts == 3
        finally:
            daemon.stop()


def test_wrong_password_is_reported_and_the_daemon_keeps_running(sqlite_url: str, dovecot: Dovecot) -> None:
    daemon = start(sqlite_url, imap(dovecot, password="wrong"))
    try:
        wait_until(
            lambda: (
                "LoginError" in (mailbox_status(daemon.engine).get("helpdesk", {}).get("last_error") or "")
            ),
            what="the refused login recorded",
        )
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
            client.sendmail("lin@example.com", ["helpdesk@example.com"], report(7))
        wait_until(lambda: count_messages(daemon) == 1, what="SMTP still files tickets")
    finally:
        daemon.stop()


def test_starttls_required_but_not_offered_never_logs_in_in_plaintext(
    sqlite_url: str, dovecot: Dovecot
) -> None:
    daemon = start(sqlite_url, imap(dovecot, tls="starttls"))
    try:
        wait_until(
            lambda: (
                "does not offer STARTTLS"
                in (mailbox_status(daemon.engine).get("helpdesk", {}).get("last_error") or "")
            ),
            what="the TLS refusal recorded",
        )
    finally:
        daemon.stop()
    assert "Login: user=" not in dovecot.log(), "no LOGIN reached the server"


def test_same_message_by_smtp_and_imap_is_stored_once(db_url: str, dovecot: Dovecot) -> None:
    raw = report(5, message_id="both-ways@example.com")
    daemon = start(db_url, imap(dovecot))
    try:
        with smtplib.SMTP("127.0.0.1", daemon.smtp_port) as client:
            client.sendmail("lin5@example.com", ["helpdesk@example.com"], raw)
        dovecot.append([raw])
        wait_until(lambda: dovecot.count("INBOX") == 0 and daemon.pending_items() == 0, what="both channels")
        assert count_messages(daemon) == 1 and daemon.ticket_count() == 1
        with daemon.engine.connect() as conn:
            states = sorted(r.state for r in conn.execute(select(inbound_item_table.c.state)))
        assert states == ["done", "duplicate"]
    finally:
        daemon.stop()


def test_two_mailboxes_each_keep_their_own_state(sqlite_url: str, dovecot: Dovecot) -> None:
    dovecot.append([report(1)], folder="INBOX")
    dovecot.append([report(2)], folder="Security")
    daemon = start(
        sqlite_url,
        imap(dovecot),
        imap(dovecot, name="security", folder="Security", processed_folder="Security-done"),
    )
    try:
        wait_until(lambda: count_messages(daemon) == 2, what="both mailboxes")
        wait_until(
            lambda: dovecot.count("Security-done") == 1 and dovecot.count("Processed") == 1, what="moves"
        )
        with daemon.engine.connect() as conn:
            names = sorted(r.name for r in conn.execute(select(imap_mailbox_table.c.name)))
        assert names == ["helpdesk", "security"]
    finally:
        daemon.stop()
