"""kill -9 at random moments while intaked drains a mailbox; after restarts, every message is stored
exactly once and moved: before commit, between commit and MOVE, during MOVE, mid-parse."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from intaked.store.models import inbound_item_table, message_table, ticket_table
from tests.support.dovecot import PASSWORD, USER, Dovecot, dovecot_unavailable_reason
from tests.support.waiting import wait_until

UNIQUE = 280
REPEATS = 20  # the same Message-ID delivered twice
KILLS = 8
MAX_KILLS = 16  # then a last run drains what is left


def message(n: int) -> bytes:
    body = f"第 {n} 封回報：產線電腦無法開機。\r\n" * (1 + n % 40)
    return (
        f"From: user{n}@example.com\r\nTo: {USER}\r\nSubject: crash test {n}\r\n"
        f"Message-ID: <crash-{n}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


def run_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "intaked", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            start_new_session=True,  # the parse workers die with it
        )


def kill_hard(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_doubles_nothing(db_url: str, tmp_path: Path) -> None:
    if reason := dovecot_unavailable_reason():
        pytest.skip(reason)
    rng = random.Random(20261121)
    messages = [message(n) for n in range(UNIQUE)] + [message(n) for n in rng.sample(range(UNIQUE), REPEATS)]
    rng.shuffle(messages)
    with Dovecot() as dovecot:
        dovecot.append(messages)
        config = tmp_path / "intaked.toml"
        config.write_text(
            f'[database]\nurl = "{db_url}"\nsqlite_busy_timeout_ms = 5000\n'
            "[metrics]\nlisten = ''\n[smtp_intake]\nenabled = false\n"
            # max_attempts: every kill here is ours, not a message's fault. Items a process died
            # holding are retried alone; without this, a slow machine can see one item claimed
            # in five killed runs in a row and quarantined (tests/intake/test_ledger.py tests quarantine).
            "[intake]\nbatch_size = 25\nclaim_timeout_seconds = 600\nmax_attempts = 100\n"
            '[logging]\nlevel = "info"\nformat = "json"\n'
            f'[imap]\nname = "crash"\nhost = "127.0.0.1"\nport = {dovecot.port}\ntls = "none"\n'
            f'username = "{USER}"\npassword = "{PASSWORD}"\nfetch_batch = 7\npoll_seconds = 0.5\n'
            "reconnect_max_seconds = 1\n"
        )
        log = tmp_path / "intaked.log"
        log.touch()
        kills = 0
        # Kill at least KILLS times, and keep killing while mail is still waiting (a fast run may
        # drain much of INBOX before its kill): each kill lands in fetch, commit, move or parse.
        while kills < KILLS or (dovecot.count("INBOX") and kills < MAX_KILLS):
            kills += 1
            connected = log.read_text().count('"event": "imap_connected"')
            proc = run_daemon(config, log)
            wait_until(
                lambda p=proc, c=connected: (  # type: ignore[misc]
                    log.read_text().count('"event": "imap_connected"') > c or p.poll() is not None
                ),
                what="the daemon to connect to IMAP",
            )
            time.sleep(rng.uniform(0.0, 0.15))
            kill_hard(proc)
        runs = log.read_text().split('"event": "imap_connected"')
        busy_runs = sum(1 for run in runs[1:] if '"event": "imap_captured"' in run)
        assert busy_runs >= 3, (
            f"the kills should interrupt the drain several times, {busy_runs} run(s) captured"
        )
        started_before = log.read_text().count('"event": "started"')
        proc = run_daemon(config, log)
        engine = create_engine(db_url)
        try:

            def settled() -> bool:
                if dovecot.count("INBOX"):
                    return False
                with engine.connect() as conn:
                    pending = conn.execute(
                        select(func.count())
                        .select_from(inbound_item_table)
                        .where(inbound_item_table.c.state.in_(["received", "processing"]))
                    ).scalar_one()
                return pending == 0

            wait_until(
                lambda: log.read_text().count('"event": "started"') > started_before, what="the last start"
            )
            wait_until(settled, timeout=180, interval=0.5, what="the mailbox drained and every item filed")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
            with engine.connect() as conn:
                tickets = conn.execute(select(func.count()).select_from(ticket_table)).scalar_one()
                stored = conn.execute(select(message_table.c.header_message_id)).all()
                states = Counter(r.state for r in conn.execute(select(inbound_item_table.c.state)))
                refs = conn.execute(select(inbound_item_table.c.source_ref)).all()
        finally:
            engine.dispose()
            if proc.poll() is None:
                kill_hard(proc)
        assert dovecot.count("INBOX") == 0, "nothing left behind"
        assert dovecot.count("Processed") == UNIQUE + REPEATS, "every delivered copy was moved, once"
        assert tickets == UNIQUE, f"one ticket per distinct message; ledger: {states}"
        assert len(stored) == UNIQUE and len({r.header_message_id for r in stored}) == UNIQUE
        assert len(refs) == len({r.source_ref for r in refs}) == UNIQUE + REPEATS, "each UID captured once"
        assert states == {"done": UNIQUE, "duplicate": REPEATS}
