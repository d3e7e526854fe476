"""The back office process: it is started with the daemon, restarted when it dies, dies with the
daemon, and the daemon still works with everything in one process (``back_office = "inline"``)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.channels.test_smtp_intake import big5_report, send
from tests.support.daemon import DaemonThread, make_settings
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until


def report(mid: str) -> bytes:
    return (
        f"From: Lin <lin@example.com>\r\nTo: helpdesk@example.com\r\nSubject: VPN 斷線\r\n"
        f"Message-ID: <{mid}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n連不上\r\n"
    ).encode()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_back_office_is_restarted_and_nothing_waits_for_ever(db_url: str) -> None:
    daemon = DaemonThread(make_settings(db_url)).start()
    try:
        back_office = daemon.daemon.back_office
        assert back_office is not None and back_office.pid is not None
        first = back_office.pid
        send(daemon.smtp_port, report("before-kill@example.com"))
        wait_until(lambda: daemon.ticket_count() == 1, what="the first ticket")
        parse_workers = children(first)
        assert parse_workers, "the back office parses in a worker process"
        os.kill(first, signal.SIGKILL)
        send(daemon.smtp_port, report("after-kill@example.com"))  # accepted while it is down
        wait_until(lambda: back_office.pid not in (None, first), timeout=30, what="a new back office")
        wait_until(lambda: daemon.ticket_count() == 2, timeout=30, what="the mail accepted meanwhile")
        wait_until(lambda: not any(map(alive, parse_workers)), timeout=10, what="its parse worker to die too")
    finally:
        daemon.stop()
    assert not alive(back_office.pid), "stopped with the daemon"  # type: ignore[arg-type]


def test_a_killed_outbox_process_is_restarted_and_the_ack_still_goes_out(db_url: str) -> None:
    sink = SmtpSink().start()
    daemon = DaemonThread(
        make_settings(
            db_url,
            outbound_mail={"host": "127.0.0.1", "port": sink.port, "from_address": "helpdesk@example.com"},
        )
    ).start()
    try:
        back_office = daemon.daemon.back_office
        assert back_office is not None and back_office.pid is not None
        intake = back_office.pid
        (outbox,) = wait_until(  # the intake process starts it, without waiting for it
            lambda: [pid for pid in children(intake) if b"outbox" in _cmdline(pid)], what="the outbox process"
        )
        os.kill(outbox, signal.SIGKILL)
        send(daemon.smtp_port, report("while-outbox-down@example.com"))
        wait_until(lambda: daemon.ticket_count() == 1, what="the ticket")
        wait_until(
            lambda: len(sink.messages()) == 1, timeout=30, what="the acknowledgement, after the restart"
        )
        assert "while-outbox-down@example.com" in sink.messages()[0].message["In-Reply-To"]
        assert [pid for pid in children(back_office.pid) if b"outbox" in _cmdline(pid)] != [outbox]
    finally:
        daemon.stop()
        sink.stop()


def test_inline_back_office_files_mail_in_one_process(db_url: str) -> None:
    daemon = DaemonThread(make_settings(db_url, daemon={"back_office": "inline"})).start()
    try:
        assert daemon.daemon.back_office is None and daemon.daemon.processor is not None
        send(daemon.smtp_port, big5_report())
        wait_until(lambda: daemon.ticket_count() == 1, what="the ticket")
    finally:
        daemon.stop()


def test_the_back_office_dies_with_a_killed_daemon(tmp_path: Path) -> None:
    """kill -9 of `intaked run` leaves no process behind (as systemd would kill the whole unit)."""
    config = tmp_path / "intaked.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/intaked.db"\n[smtp_intake]\nlisten = "127.0.0.1:0"\n'
        '[logging]\nformat = "json"\n'
    )
    log = tmp_path / "log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intaked", "run", "--config", str(config)], stdout=out, stderr=out
        )
    try:
        wait_until(lambda: '"started"' in log.read_text() or proc.poll() is not None, what="start")
        wait_until(lambda: '"calendars_loaded"' in log.read_text(), what="the SLA worker's first pass")
        (line,) = [ln for ln in log.read_text().splitlines() if '"calendars_loaded"' in ln]
        assert json.loads(line)["process"] == "back_office.intake", "every line says which process wrote it"
        back_offices = [pid for pid in children(proc.pid) if b"intaked.backoffice" in _cmdline(pid)]
        assert len(back_offices) == 1, f"one back office process, children: {children(proc.pid)}"
        family = back_offices + children(back_offices[0])
        assert len(family) >= 2, "the back office and its parse worker"
        front = os.getpriority(os.PRIO_PROCESS, proc.pid)
        lower = min(front + 10, 19)  # daemon.back_office_nice's default
        outbox = [pid for pid in family if b"outbox" in _cmdline(pid)]
        priorities = {pid: os.getpriority(os.PRIO_PROCESS, pid) for pid in family}
        assert len(outbox) == 1 and priorities.pop(outbox[0]) == front, (
            "the sender keeps the front's priority"
        )
        assert set(priorities.values()) == {lower}, "ticket creation and its parse worker yield to the front"
        proc.kill()
        proc.wait(10)
        wait_until(lambda: not any(map(alive, family)), timeout=10, what="every child process to die too")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def children(parent: int) -> list[int]:
    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and alive(int(pid)) and _parent(int(pid)) == parent
    ]


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().split(") ")[1].split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return -1


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except FileNotFoundError:
        return b""


def test_an_unknown_role_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "intaked.backoffice", "payroll", "0"],
        input=pickle.dumps(make_settings("sqlite://")),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0 and b"unknown back office role 'payroll'" in result.stderr


@pytest.mark.parametrize("garbage", [b"", b"not a pickle"])
def test_a_back_office_without_settings_exits_with_an_error(garbage: bytes) -> None:
    read_fd, write_fd = os.pipe()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "intaked.backoffice", "intake", str(read_fd)],
            input=garbage,
            capture_output=True,
            pass_fds=(read_fd,),
            timeout=60,
        )
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert result.returncode != 0 and b"ready" not in result.stdout
