"""The embedded database's files are private: the real command line and daemon (subprocesses,
started with the common umask 022, outside systemd, in a temporary XDG_STATE_HOME) create the
state directory 0700 and the SQLite file and its -wal/-shm/-writer files 0600, take away others'
access from what an older intaked left open, and leave a directory that is not theirs as it is,
with a warning."""

from __future__ import annotations

import os
import smtplib
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dovecot import free_port
from tests.support.processes import DaemonProcess
from tests.support.waiting import wait_until


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh XDG_STATE_HOME (not created yet), outside systemd, with umask 022 for what starts."""
    xdg = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(xdg))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("STATE_DIRECTORY", "INTAKED_CONFIG", "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    previous = os.umask(0o022)
    try:
        yield xdg
    finally:
        os.umask(previous)


def intaked(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intaked", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_db_upgrade_creates_a_private_state_directory_and_database(state_home: Path) -> None:
    result = intaked("db", "upgrade")
    assert result.returncode == 0, result.stderr
    state_dir = state_home / "intaked"
    assert mode(state_home) == 0o700 and mode(state_dir) == 0o700
    assert mode(state_dir / "intaked.db") == 0o600
    assert mode(state_dir / "intaked.db-writer") == 0o600


def test_the_running_daemon_keeps_its_database_and_wal_files_private(
    state_home: Path, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "intaked.toml"
    config.write_text(
        f'[metrics]\nlisten = ""\n[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        '[acknowledgements]\nenabled = false\n[logging]\nlevel = "info"\nformat = "json"\n',
        encoding="utf-8",
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_started()
        daemon.wait_back_office_ready()
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(
                "lin@example.com",
                ["helpdesk@example.com"],
                b"From: lin@example.com\r\nSubject: VPN\r\nMessage-ID: <m1@example.com>\r\n\r\nVPN down\r\n",
            )
        state_dir = state_home / "intaked"
        database = state_dir / "intaked.db"

        def ticket_filed() -> bool:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
                return bool(conn.execute("SELECT count(*) FROM tickets").fetchone()[0])

        wait_until(ticket_filed, what="the ticket")
        files = {name: mode(state_dir / name) for name in ("intaked.db", "intaked.db-wal", "intaked.db-shm")}
        assert files == {"intaked.db": 0o600, "intaked.db-wal": 0o600, "intaked.db-shm": 0o600}
        assert mode(state_dir) == 0o700
        assert {mode(path) for path in state_dir.iterdir()} == {0o600}
    finally:
        daemon.stop()


def test_files_an_older_intaked_left_open_are_closed_to_others(state_home: Path) -> None:
    state_dir = state_home / "intaked"
    state_dir.mkdir(parents=True, mode=0o755)
    database = state_dir / "intaked.db"
    sqlite3.connect(database).close()
    database.chmod(0o644)
    os.chmod(state_dir, 0o755)
    result = intaked("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert mode(database) == 0o640 and mode(state_dir) == 0o750  # the group's access is the operator's
    assert "state_file_mode_tightened" in result.stderr


def test_a_database_directory_that_is_not_intakeds_is_left_as_it_is_with_a_warning(
    state_home: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    config = tmp_path / "intaked.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{shared}/helpdesk.db"\n', encoding="utf-8")
    result = intaked("db", "upgrade", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert mode(shared) == 0o755 and mode(shared / "helpdesk.db") == 0o600
    assert "database_directory_open_to_others" in result.stderr and f"chmod o-rwx {shared}" in result.stderr
