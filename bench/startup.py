"""Benchmark: how soon a restarted `intaked run` is back at work (intaked issue 13, point 4).

    .venv/bin/python bench/startup.py [--starts 10] [--db sqlite,postgresql] [--checkout PATH]

For each database: the schema is created first (`intaked db upgrade`, as the run before the
restart left it), then `intaked run` is started ``--starts`` times, one after the other, each
stopped with SIGTERM once its ticket is filed. Per start, from spawning the process:
- "listening": the first TCP connection to the SMTP port that is accepted;
- "first 250": the 250 for a message sent the moment it listens (committed to the ledger);
- "its ticket": that message is a ticket (the back office is up and filed it);
- "IMAP capture" (SQLite, when Dovecot can run): a message waiting in the mailbox before the
  start is committed to the ledger (polled every 5 ms), measured in a second series of starts.
``--checkout PATH`` runs another tree's ``intaked`` (e.g. an export of an older commit) with the
same interpreter, for before/after figures in one session. Baseline: ``python -c pass``, the
interpreter's own start on this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import fresh_database  # noqa: E402
from intaked.store.models import ticket_table  # noqa: E402
from tests.support.dovecot import PASSWORD, USER, Dovecot, dovecot_unavailable_reason  # noqa: E402
from tests.support.workers import free_port  # noqa: E402

POLL_SECONDS = 0.005


def report(tag: str) -> bytes:
    return (
        f"From: Lin <lin@example.com>\r\nTo: {USER}\r\nSubject: start-up {tag}\r\n"
        f"Message-ID: <startup-{tag}@example.com>\r\n\r\nThe printer is jammed.\r\n"
    ).encode()


@contextlib.contextmanager
def daemon(checkout: Path, config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intaked", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            cwd=checkout,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)


def until(check: Callable[[], object], started: float, what: str, timeout: float = 120.0) -> float:
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit(f"no {what} after {timeout:g} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - started


def tickets(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ticket_table)).scalar_one())


def smtp_starts(checkout: Path, url: str, starts: int, tmp: Path) -> list[tuple[float, float, float]]:
    port = free_port()
    config = tmp / "smtp.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[smtp_intake]\nlisten = "127.0.0.1:{port}"\n')
    upgrade(checkout, config)
    engine = create_engine(url)
    timings = []
    try:
        for n in range(starts):
            spawned = time.monotonic()
            with daemon(checkout, config, tmp / "smtp.log"):
                listening = until(lambda: port_accepts(port), spawned, "listener")
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                    client.sendmail("lin@example.com", [USER], report(f"smtp-{n}-{time.time_ns()}"))
                first_250 = time.monotonic() - spawned
                ticket = until(lambda k=n + 1: tickets(engine) >= k, spawned, "ticket")  # type: ignore[misc]
            timings.append((listening, first_250, ticket))
    finally:
        engine.dispose()
    return timings


def imap_starts(checkout: Path, starts: int, tmp: Path) -> list[float]:
    database = tmp / "imap.db"
    timings = []
    with Dovecot() as dovecot:
        config = tmp / "imap.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{database}"\n[smtp_intake]\nenabled = false\n'
            f'[[imap]]\nname = "bench"\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
            f'username = "{USER}"\npassword = "{PASSWORD}"\n'
        )
        upgrade(checkout, config)

        def captured(expected: int) -> bool:
            with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
                return int(conn.execute("SELECT count(*) FROM inbound_items").fetchone()[0]) >= expected

        for n in range(starts):
            dovecot.append([report(f"imap-{n}-{time.time_ns()}")])
            spawned = time.monotonic()
            with daemon(checkout, config, tmp / "imap.log"):
                timings.append(until(lambda k=n + 1: captured(k), spawned, "IMAP capture"))  # type: ignore[misc]
    return timings


def port_accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def upgrade(checkout: Path, config: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "intaked", "db", "upgrade", "--config", str(config)],
        cwd=checkout,
        check=True,
        capture_output=True,
    )


def interpreter_start() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - started


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--db", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--checkout", type=Path, default=REPO, help="the tree whose intaked runs")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    base = statistics.median(interpreter_start() for _ in range(5))
    print(f"intaked from {checkout}; {args.starts} starts each; `python -c pass` takes {base:.3f} s")
    print("seconds from spawning `intaked run`: median (min-max)")
    print(f"{'database':<11} {'listening':>17} {'first 250':>17} {'its ticket':>17}")
    for db in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp, fresh_database(db, tmp, "startup") as url:
            if url is None:
                continue
            timings = smtp_starts(checkout, url, args.starts, Path(tmp))
        listening, first_250, ticket = (list(column) for column in zip(*timings, strict=True))
        print(f"{db:<11} {summary(listening):>17} {summary(first_250):>17} {summary(ticket):>17}")
    if reason := dovecot_unavailable_reason():
        print(f"IMAP: skipped: {reason}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        captures = imap_starts(checkout, args.starts, Path(tmp))
    print(f"IMAP capture (SQLite): {summary(captures)}")


if __name__ == "__main__":
    main()
