"""systemd's notify protocol over a real ``NOTIFY_SOCKET`` datagram socket, with the real
``intaked run``: READY once the listener accepts, STATUS lines with the store's figures,
WATCHDOG=1 at the interval and none while a back office process is stopped (SIGSTOP), STOPPING=1
on SIGTERM (issue 16, point 1)."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from intaked.daemon import Daemon
from intaked.notify import Notifier, watchdog_seconds
from intaked.store.engine import engine_for
from tests.metrics.scrape import scrape, value
from tests.support.daemon import make_settings
from tests.support.dovecot import free_port
from tests.support.processes import DaemonProcess, stop_between_writes
from tests.support.smtpsink import SmtpSink
from tests.support.waiting import wait_until


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; every message, with when it came."""

    def __init__(self, directory: Path) -> None:
        path = directory / "notify.sock"
        if len(str(path)) > 100:  # sun_path holds 108 bytes
            path = Path(tempfile.mkdtemp(prefix="notify-")) / "n.sock"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name="notify-socket", daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode("utf-8")))

    def lines(self, prefix: str, since: float = 0.0) -> list[tuple[float, str]]:
        """Every ``prefix...`` line received at or after ``since`` (a message may hold several)."""
        with self._lock:
            found = [(at, line) for at, message in self.messages for line in message.split("\n")]
        return [(at, line) for at, line in found if at >= since and line.startswith(prefix)]

    def pings(self, since: float, until: float | None = None) -> int:
        end = time.monotonic() if until is None else until
        return sum(1 for at, _ in self.lines("WATCHDOG=1", since) if at <= end)

    def close(self) -> None:
        self._closed = True
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    listening = NotifySocket(tmp_path)
    yield listening
    listening.close()


def start(
    tmp_path: Path, url: str, sink: SmtpSink, notify: NotifySocket, watchdog_usec: int | None
) -> tuple[DaemonProcess, int, int]:
    """The daemon, its SMTP port and its metrics port."""
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "intaked.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\nsqlite_busy_timeout_ms = 5000\n'
        "[daemon]\nheartbeat_seconds = 0.5\nlease_seconds = 2.0\n"
        f'[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\n'
        'from_address = "helpdesk@example.com"\n'
        "[outbox]\npoll_seconds = 0.5\n"
        f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
        '[logging]\nlevel = "info"\nformat = "json"\n',
        encoding="utf-8",
    )
    env = {"NOTIFY_SOCKET": str(notify.path)}
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    return DaemonProcess(config, tmp_path / "intaked.log", env=env), port, metrics_port


def report(n: int) -> bytes:
    return (
        f"From: op{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: 印表機 {n} 卡紙\r\n"
        f"Message-ID: <notify-{n}@example.com>\r\n\r\n三樓的印表機\r\n"
    ).encode()


def send(port: int, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for n in range(count):
            client.sendmail(f"op{n}@example.com", ["helpdesk@example.com"], report(n))


def latest_status(notify: NotifySocket) -> str:
    found = notify.lines("STATUS=")
    return found[-1][1].removeprefix("STATUS=") if found else ""


def test_ready_after_the_listener_status_with_figures_and_stopping_on_sigterm(
    tmp_path: Path, sqlite_url: str, sink: SmtpSink, notify: NotifySocket
) -> None:
    """READY=1 comes once SMTP accepts (a connection made as it arrives is greeted); the STATUS
    line counts what waits in the ledger (3 mails while the back office is stopped, none once it
    runs again); STOPPING=1 on SIGTERM; no WATCHDOG=1 without WATCHDOG_USEC."""
    daemon, port, _ = start(tmp_path, sqlite_url, sink, notify, watchdog_usec=None)
    try:
        wait_until(lambda: notify.lines("READY=1") or daemon.proc.poll() is not None, what="READY=1")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:  # at once: it must be listening
            assert client.noop()[0] == 250
        daemon.wait_back_office_ready()
        wait_until(lambda: "0 items queued, 0 quarantined, 0 outbox pending" in latest_status(notify))
        intake = daemon.child("intake")
        stop_between_writes(intake, sqlite_url)
        try:
            send(port, 3)
            wait_until(lambda: "3 items queued" in latest_status(notify), what="3 items queued")
        finally:
            os.kill(intake, signal.SIGCONT)
        wait_until(
            lambda: latest_status(notify).startswith("0 items queued") and len(sink.received) == 3,
            what="the queue emptied and the acknowledgements sent",
        )
        wait_until(
            lambda: latest_status(notify) == "0 items queued, 0 quarantined, 0 outbox pending",
            what="the outbox rows sent",
        )
        assert notify.lines("WATCHDOG=1") == []
    finally:
        code = daemon.stop()
    assert code == 0
    assert notify.lines("STOPPING=1"), notify.messages
    (ready_at, _), *_ = notify.lines("READY=1")
    assert notify.lines("STOPPING=1")[0][0] > ready_at


def watchdog_stops_while_stopped(
    daemon: DaemonProcess, notify: NotifySocket, role: str, metrics_port: int
) -> None:
    """SIGSTOP the back office process of ``role``: the pings stop (within a lease and a tick or
    so), none come for a while, and they come back after SIGCONT; /metrics says so meanwhile."""
    pid = daemon.child(role)
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        wait_until(
            lambda: time.monotonic() - max(at for at, _ in notify.lines("WATCHDOG=1")) > 2.0,
            timeout=20,
            what=f"the pings to stop after SIGSTOP of {role}",
        )
        quiet_from = time.monotonic()
        time.sleep(3.0)
        assert notify.pings(quiet_from) == 0, f"pings while {role} is stopped"
        assert value(scrape(metrics_port), "intaked_processes_well") == 0
        assert time.monotonic() - stopped_at < 25
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    wait_until(lambda: notify.pings(resumed) >= 2, timeout=20, what=f"the pings back after SIGCONT of {role}")
    assert value(scrape(metrics_port), "intaked_processes_well") == 1
    withheld = [e for e in daemon.events() if e.get("event") == "watchdog_withheld"]
    assert withheld, "the front says why it withholds the pings"


def test_watchdog_pings_at_the_interval_and_stop_while_a_back_office_process_is_stopped(
    tmp_path: Path, sqlite_url: str, sink: SmtpSink, notify: NotifySocket
) -> None:
    """WATCHDOG_USEC = 1 s: about two pings a second (counted over 4 s, generously); none while
    the outbox sender, then the intake process, is stopped with SIGSTOP; back after SIGCONT."""
    daemon, _, metrics_port = start(tmp_path, sqlite_url, sink, notify, watchdog_usec=1_000_000)
    try:
        wait_until(lambda: notify.lines("READY=1") or daemon.proc.poll() is not None, what="READY=1")
        daemon.wait_back_office_ready()
        window = time.monotonic()
        time.sleep(4.0)
        assert 4 <= notify.pings(window) <= 12, notify.pings(window)
        assert value(scrape(metrics_port), "intaked_processes_well") == 1
        watchdog_stops_while_stopped(daemon, notify, "outbox", metrics_port)
        watchdog_stops_while_stopped(daemon, notify, "intake", metrics_port)
    finally:
        code = daemon.stop()
    assert code == 0
    assert notify.lines("STOPPING=1")


def test_the_watchdog_is_for_this_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_seconds() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_seconds() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_seconds() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_seconds() is None


def test_a_store_that_cannot_be_read_gives_a_status_saying_so(tmp_path: Path) -> None:
    """The daemon rides out an outage: the STATUS line says the store cannot be read."""
    (tmp_path / "intaked.db").mkdir()  # a directory where the database should be
    settings = make_settings(f"sqlite:///{tmp_path / 'intaked.db'}")
    daemon = Daemon(settings)
    daemon.engine = engine_for(settings)
    try:
        line = asyncio.run(daemon.status())
    finally:
        daemon.executor.shutdown()
        daemon.engine.dispose()
    assert line.startswith("accepting mail; the store cannot be read"), line


def test_outside_systemd_the_store_is_not_read_for_a_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NOTIFY_SOCKET nobody reads the STATUS line: no query runs for it, no ping is sent."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    reads: list[int] = []

    async def status() -> str:
        reads.append(1)
        return "read"

    async def run() -> None:
        notifier = Notifier(status, lambda: None, status_seconds=0.01)
        notifier.start()
        await asyncio.sleep(0.2)
        await notifier.stop()

    asyncio.run(run())
    assert reads == []
