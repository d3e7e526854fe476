"""Benchmark: draining a Dovecot mailbox into tickets, and IDLE latency, next to the bare pipeline.

    .venv/bin/python bench/imap_drain.py [--messages 5000] [--idle-samples 200] [--db sqlite,postgresql]

Needs root and Debian's dovecot-imapd (the test suite's Dovecot fixture). For each database:
- bare pipeline (the limit): imapclient UID FETCH of every message in batches of 100 +
  ``email.message_from_bytes`` + one INSERT per message, committed per batch (as intaked commits
  each fetched batch before moving it);
- intaked: a real ``intaked run`` drains the same messages preloaded in Dovecot, from the first
  captured message: "drained" when every message is committed to the intake ledger and moved out
  of INBOX (what the IMAP channel does; parsing and tickets follow in the back office process),
  "tickets" when every message is also a ticket;
- IDLE latency: one message at a time APPENDed to the idle mailbox, time until its ticket is
  committed (polled every 2 ms), p50/p99.
"""

from __future__ import annotations

import email
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import arguments, fresh_database, intaked_process, percentile_ms, use_back_office  # noqa: E402
from bench.smtp_intake import mixed_messages  # noqa: E402
from intaked.store.models import inbound_item_table, message_table  # noqa: E402
from tests.support.dovecot import PASSWORD, USER, Dovecot, dovecot_unavailable_reason  # noqa: E402


def preload(server: Dovecot, messages: list[bytes]) -> None:
    with server.client() as client:
        for start in range(0, len(messages), 200):
            client.multiappend("INBOX", messages[start : start + 200])


def bare_pipeline(server: Dovecot, url: str) -> float:
    engine = create_engine(url)
    blob = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE bare (id INTEGER PRIMARY KEY, subject TEXT, raw {blob})"))
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=FULL")
    start = time.perf_counter()
    count = 0
    with server.client() as client, engine.connect() as conn:
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        for first in range(0, len(uids), 100):
            fetched = client.fetch(uids[first : first + 100], ["BODY.PEEK[]"])
            for uid, data in fetched.items():
                raw = data[b"BODY[]"]
                msg = email.message_from_bytes(raw)
                conn.execute(
                    text("INSERT INTO bare (id, subject, raw) VALUES (:i, :s, :r)"),
                    {"i": int(uid), "s": str(msg.get("subject", "")), "r": raw},
                )
                count += 1
            conn.commit()
    elapsed = time.perf_counter() - start
    engine.dispose()
    return count / elapsed


def intaked_drain(server: Dovecot, url: str, total: int, idle_samples: int) -> dict[str, float]:
    with intaked_process(
        f'[database]\nurl = "{url}"\n[smtp_intake]\nenabled = false\n[logging]\nlevel = "warning"\n'
        f'format = "json"\n[imap]\nname = "bench"\nhost = "127.0.0.1"\nport = {server.port}\n'
        f'tls = "none"\nusername = "{USER}"\npassword = "{PASSWORD}"\n'
    ):
        engine = create_engine(url)
        try:
            items = inbound_item_table
            first = drained = None
            while True:
                try:
                    with engine.connect() as conn:
                        captured = conn.execute(select(func.count()).select_from(items)).scalar_one()
                        pending = conn.execute(
                            select(func.count())
                            .select_from(items)
                            .where(items.c.state.in_(["received", "processing"]))
                        ).scalar_one()
                except DBAPIError:  # the daemon has not created the schema yet
                    time.sleep(0.05)
                    continue
                if captured and first is None:
                    first = time.perf_counter()
                if drained is None and captured == total and server.count("INBOX") == 0:
                    drained = time.perf_counter()  # every message stored (ledger) and moved
                if drained is not None and pending == 0:
                    break
                time.sleep(0.02)
            assert first is not None and drained is not None
            drain_rate = total / (drained - first)
            ticket_rate = total / (time.perf_counter() - first)
            latencies = []
            with server.client() as client:
                for n in range(idle_samples):
                    raw = (
                        f"From: idle{n}@example.com\r\nSubject: idle {n}\r\n"
                        f"Message-ID: <idle-{n}-{time.time_ns()}@bench>\r\n\r\nidle\r\n"
                    ).encode()
                    with engine.connect() as conn:
                        before = conn.execute(select(func.count()).select_from(message_table)).scalar_one()
                    start = time.perf_counter()
                    client.append("INBOX", raw)
                    while True:
                        with engine.connect() as conn:
                            now = conn.execute(select(func.count()).select_from(message_table)).scalar_one()
                        if now > before:
                            break
                        time.sleep(0.002)
                    latencies.append(time.perf_counter() - start)
        finally:
            engine.dispose()
    latencies.sort()
    return {
        "drain_rate": drain_rate,
        "ticket_rate": ticket_rate,
        "idle_p50_ms": percentile_ms(latencies, 0.50),
        "idle_p99_ms": percentile_ms(latencies, 0.99),
    }


def main() -> None:
    parser = arguments(__doc__, 5000)
    parser.add_argument("--idle-samples", type=int, default=200)
    args = parser.parse_args()
    use_back_office(args.back_office)
    if reason := dovecot_unavailable_reason():
        raise SystemExit(reason)
    messages = mixed_messages(args.messages)
    print(f"{args.messages} mixed messages preloaded in Dovecot, {args.idle_samples} IDLE samples")
    print(
        f"{'database':<11} {'bare msg/s':>10} {'drained msg/s':>13} {'% of bare':>9} {'tickets/s':>9} "
        f"{'% of bare':>9} {'IDLE p50 ms':>11} {'IDLE p99 ms':>11}"
    )
    for db in args.db.split(","):
        with (
            tempfile.TemporaryDirectory() as tmp,
            fresh_database(db, tmp, "bare") as bare_url,
            fresh_database(db, tmp, "intaked") as url,
            Dovecot() as server,
        ):
            if bare_url is None or url is None:
                continue
            preload(server, messages)
            bare = bare_pipeline(server, bare_url)
            result = intaked_drain(server, url, len(messages), args.idle_samples)
        drained, tickets = result["drain_rate"], result["ticket_rate"]
        print(
            f"{db:<11} {bare:>10.0f} {drained:>13.0f} {100 * drained / bare:>8.0f}% "
            f"{tickets:>9.0f} {100 * tickets / bare:>8.0f}% "
            f"{result['idle_p50_ms']:>11.0f} {result['idle_p99_ms']:>11.0f}"
        )


if __name__ == "__main__":
    main()
