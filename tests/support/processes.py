"""The real daemon as a process tree, for fault tests: ``intaked run`` in a process group of its
own (so a test can kill the whole tree at once, as systemd would), its descendants by role, a
patient SMTP sender, PostgreSQL connections cut by their application name, and what is left to
do in the ledger and the outbox."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, make_url, select, text

from intaked.store.models import inbound_item_table, outbox_table, ticket_table
from tests.support.waiting import wait_until


class DaemonProcess:
    """``intaked run --config CONFIG``, logging JSON to ``log_path``; ``preexec_fn`` runs in the
    child before it starts (e.g. to lower its descriptor limit); ``env`` adds to its environment."""

    def __init__(
        self,
        config: Path,
        log_path: Path,
        preexec_fn: Callable[[], None] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "intaked", "run", "--config", str(config)],
                stdout=out,
                stderr=out,
                preexec_fn=preexec_fn,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its back office processes are stopped with it
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> bytes:
        return self.log_path.read_bytes()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def events(self) -> list[dict[str, Any]]:
        """Every JSON object in the log, other text (e.g. a traceback) skipped. The processes
        share the file, so two objects are sometimes written on one line: each is read."""
        decoder = json.JSONDecoder()
        events: list[dict[str, Any]] = []
        for line in self.log_lines():
            position = line.find("{")
            while position != -1:
                try:
                    parsed, end = decoder.raw_decode(line, position)
                except ValueError:
                    position = line.find("{", position + 1)
                    continue
                if isinstance(parsed, dict):
                    events.append(parsed)
                position = line.find("{", end)
        return events

    def event(self, name: str) -> dict[str, Any] | None:
        """The first log event called ``name``."""
        return next((e for e in self.events() if e.get("event") == name), None)

    def port_of(self, event: str) -> int:
        """The port a ``*_listening`` event names."""
        found = self.event(event)
        assert found is not None, f"no {event} in the log"
        return int(found["port"])

    def started(self) -> bool:
        return b'"event": "started"' in self.log_text()

    def wait_started(self, timeout: float = 30) -> None:
        wait_until(lambda: self.started() or self.proc.poll() is not None, timeout=timeout, what="start")
        assert self.proc.poll() is None, f"the daemon exited: {self.log_text()[-2000:]!r}"

    def wait_back_office_ready(self, timeout: float = 60) -> None:
        """Until both back office processes (intake, outbox) said they are ready; they start
        beside the front, after it is listening."""
        wait_until(
            lambda: (
                self.log_text().count(b'"event": "back_office_ready"') >= 2 or self.proc.poll() is not None
            ),
            timeout=timeout,
            what="the back office ready",
        )
        assert self.proc.poll() is None, f"the daemon exited: {self.log_text()[-2000:]!r}"

    def child(self, role: str) -> int:
        """The pid of the back office process of ``role`` (``intake`` or ``outbox``)."""
        (pid,) = [p for p in descendants(self.pid) if f"intaked.backoffice {role}" in cmdline(p)]
        return pid

    def kill(self) -> None:
        """SIGKILL to the whole tree."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int | None:
        """SIGTERM to the tree and wait (SIGKILL after 30 s); its exit code, None if it had to be
        killed. Nothing is sent if it is already gone."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        code = self.proc.poll()
        if code is None:
            self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # anything of the tree left behind
        return code


def children(pid: int) -> list[int]:
    """Every thread's children (a process started from a worker thread is listed under it)."""
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in listing.read_text(encoding="ascii").split()]
    return found


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            return raw.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def send_patiently(
    port: int, count: int, report: Callable[[int], bytes], accepted: list[int]
) -> threading.Thread:
    """A sender thread that tries each of ``count`` reports until it is answered 250 (451 or a
    refused connection means later), appending each accepted number to ``accepted``."""

    def run() -> None:
        for n in range(count):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                        client.sendmail(f"user{n}@example.com", ["helpdesk@example.com"], report(n))
                except (smtplib.SMTPException, OSError):
                    time.sleep(0.1)
                    continue
                accepted.append(n)
                break

    thread = threading.Thread(target=run, name="patient-sender", daemon=True)
    thread.start()
    return thread


def cut_connections(admin: Engine, application_name: str) -> int:
    """``pg_terminate_backend`` on every connection named ``application_name``; how many."""
    with admin.connect() as conn:
        return len(
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application_name},
            ).all()
        )


def backlog(engine: Engine) -> tuple[int, int, int]:
    """(tickets, ledger items not yet done, outbox rows still pending or being sent)."""
    with engine.connect() as conn:
        tickets = conn.execute(select(func.count()).select_from(ticket_table)).scalar_one()
        waiting = conn.execute(
            select(func.count())
            .select_from(inbound_item_table)
            .where(inbound_item_table.c.state.in_(["received", "processing"]))
        ).scalar_one()
        unsent = conn.execute(
            select(func.count())
            .select_from(outbox_table)
            .where(outbox_table.c.state.in_(["pending", "sending"]))
        ).scalar_one()
    return int(tickets), int(waiting), int(unsent)


def _sqlite_writer_free(database: str) -> bool:
    """Nobody holds intaked's writer queue lock (``<database>-writer``) or SQLite's write lock."""
    fd = os.open(f"{database}-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    with contextlib.closing(sqlite3.connect(database, timeout=0)) as probe:
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # "database is locked"
            return False
        probe.rollback()
    return True


def stop_between_writes(pid: int, url: str, tries: int = 100) -> None:
    """SIGSTOP ``pid`` at a moment it is not inside a write to the SQLite store at ``url``: a
    process frozen mid-transaction would keep every other writer out for as long as it is
    stopped, which is not what a test of "the back office stopped" means (a real hang is
    the watchdog's business). On PostgreSQL a stopped writer blocks only its own rows: stopped
    at once."""
    database = make_url(url).database if url.startswith("sqlite") else None
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        if database is None or _sqlite_writer_free(database):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError(f"process {pid} was inside a write each of {tries} times it was stopped")
