"""Benchmark: SMTP intake of mixed mail from concurrent senders, next to the bare pipeline.

    .venv/bin/python bench/smtp_intake.py [--messages 5000] [--senders 20] [--db sqlite,postgresql]

For each database it measures, in the same run:
- the bare pipeline (the limit): ``email.message_from_bytes`` + one INSERT and commit per
  message, no daemon, no SMTP;
- a no-op SMTP server (the second limit): aiosmtpd answering 250 at once, storing nothing;
- intaked: a real ``intaked run`` process; N concurrent SMTP sessions (bench/load.py) send the
  messages; we time end of DATA → 250 per message, the 250 throughput, and the time until every
  message is a ticket (parsing and ticket creation included).
Messages: the real-world corpus in ../shared/mail-corpus (when present, files under 1 MiB) and
generated Big5/UTF-8/HTML/attachment mail, each given a fresh Message-ID so none is a duplicate.
"""

from __future__ import annotations

import base64
import email
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (  # noqa: E402
    arguments,
    free_port,
    fresh_database,
    intaked_process,
    percentile_ms,
    use_back_office,
    wait_for_port,
)
from bench.load import Envelope, envelope, send_all  # noqa: E402
from intaked.store.models import InboundItem  # noqa: E402

CORPUS = REPO.parent / "shared" / "mail-corpus"


def generated(n: int) -> bytes:
    kind = n % 4
    mid = f"<gen-{n}-{uuid.uuid4().hex}@bench.example.com>"
    if kind == 0:
        subject = base64.b64encode(f"產線 MES 當機 碁恒裏 {n}".encode("cp950")).decode()
        return (
            f"From: user{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: =?big5?B?{subject}?=\r\n"
            f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=big5\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode() + ("您好，產線停工。\r\n" * 20).encode("cp950")
    if kind == 1:
        return (
            f"From: 王小明 <ming{n}@example.com>\r\nTo: helpdesk@example.com\r\n"
            f"Subject: 印表機無法列印 {n}\r\n"
            f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            + "印表機卡紙，請協助。\r\n"
            * 30
        ).encode()
    if kind == 2:
        html = "<html><head><style>p{color:red}</style></head><body>" + "<p>ERP&nbsp;無法登入</p>" * 40
        return (
            f"From: a{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: ERP {n}\r\nMessage-ID: {mid}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + html
            + "</body></html>\r\n"
        ).encode()
    payload = base64.encodebytes(os.urandom(20_000)).decode().replace("\n", "\r\n")
    return (
        f"From: b{n}@example.com\r\nTo: helpdesk@example.com\r\n"
        f"Subject: screenshot {n}\r\nMessage-ID: {mid}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\n請看附件\r\n--b\r\n"
        'Content-Type: image/png; name="s.png"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + payload
        + "--b--\r\n"
    ).encode()


def corpus_messages() -> list[bytes]:
    if not CORPUS.is_dir():
        return []
    out = []
    for path in sorted(CORPUS.rglob("*")):
        if (
            path.suffix.lower() in (".eml", ".raw", ".msg")
            and path.is_file()
            and path.stat().st_size < 1 << 20
        ):
            out.append(path.read_bytes())
    return out


def with_fresh_message_id(raw: bytes, n: int) -> bytes:
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"message-id:")]
    lines.insert(0, f"Message-ID: <bench-{n}-{uuid.uuid4().hex}@bench.example.com>".encode())
    return b"\r\n".join(lines) + (sep or b"\r\n\r\n") + body


def mixed_messages(count: int) -> list[bytes]:
    corpus = corpus_messages()
    out = []
    for n in range(count):
        if corpus and n % 3 == 0:
            out.append(with_fresh_message_id(corpus[(n // 3) % len(corpus)], n))
        else:
            out.append(generated(n))
    random.Random(7).shuffle(out)
    return out


def bare_pipeline(url: str, messages: list[bytes]) -> float:
    """The limit: parse with the standard library and INSERT + commit each message; messages/s."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE bare (id INTEGER PRIMARY KEY, subject TEXT, raw BYTEA)"
                if engine.dialect.name == "postgresql"
                else "CREATE TABLE bare (id INTEGER PRIMARY KEY, subject TEXT, raw BLOB)"
            )
        )
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=FULL")
    start = time.perf_counter()
    with engine.connect() as conn:
        for i, raw in enumerate(messages):
            msg = email.message_from_bytes(raw)
            conn.execute(
                text("INSERT INTO bare (id, subject, raw) VALUES (:i, :s, :r)"),
                {"i": i, "s": str(msg.get("subject", "")), "r": raw},
            )
            conn.commit()
    elapsed = time.perf_counter() - start
    engine.dispose()
    return len(messages) / elapsed


def send_timed(port: int, envelopes: list[Envelope], senders: int) -> tuple[list[float], float]:
    """Send from ``senders`` sessions at once; returns per-message DATA→250 latencies and wall time."""
    sent, wall = send_all(port, envelopes, senders)
    refused = [s for s in sent if s.code != 250]
    if refused or len(sent) != len(envelopes):
        raise SystemExit(f"{len(envelopes) - len(sent) + len(refused)} messages not accepted")
    return [s.reply - s.data_end for s in sent], wall


NOOP_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
SMTP.line_length_limit = 1 << 20  # as intaked: real mail has long lines
class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), decode_data=False, enable_SMTPUTF8=True),
                                      "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
asyncio.run(main())
"""


def noop_smtp(messages: list[Envelope], senders: int) -> float:
    """A second limit: aiosmtpd answering 250 at once, storing nothing; 250s/s."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", NOOP_SERVER, str(port)])
    try:
        wait_for_port(port)
        _, wall = send_timed(port, messages, senders)
    finally:
        proc.terminate()
        proc.wait(10)
    return len(messages) / wall


def intaked_run(url: str, messages: list[Envelope], senders: int) -> dict[str, float]:
    port = free_port()
    with intaked_process(
        f'[database]\nurl = "{url}"\n[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        "[acknowledgements]\nenabled = false\n"  # measured on their own by bench/ack_latency.py
        '[logging]\nlevel = "warning"\nformat = "json"\n'
    ):
        wait_for_port(port)
        engine = create_engine(url)
        start = time.perf_counter()
        latencies, wall = send_timed(port, messages, senders)
        items = InboundItem.__table__
        while True:
            with engine.connect() as conn:
                pending = conn.execute(
                    select(func.count())
                    .select_from(items)
                    .where(items.c.state.in_(["received", "processing"]))
                ).scalar_one()
            if pending == 0:
                break
            time.sleep(0.02)
        all_done = time.perf_counter() - start
        with engine.connect() as conn:
            states: dict[str, int] = dict(
                conn.execute(select(items.c.state, func.count()).group_by(items.c.state)).all()
            )
        engine.dispose()
    if states.get("done") != len(messages):
        raise SystemExit(f"expected {len(messages)} tickets, ledger says {states}")
    latencies.sort()
    return {
        "accept_rate": len(messages) / wall,
        "ticket_rate": len(messages) / all_done,
        "p50_ms": percentile_ms(latencies, 0.50),
        "p99_ms": percentile_ms(latencies, 0.99),
    }


def main() -> None:
    parser = arguments(__doc__, 5000)
    parser.add_argument("--senders", type=int, default=20)
    args = parser.parse_args()
    use_back_office(args.back_office)
    messages = mixed_messages(args.messages)
    print(
        f"{args.messages} mixed messages ({sum(map(len, messages)) / len(messages) / 1024:.1f} KiB average), "
        f"{args.senders} concurrent senders, {os.cpu_count()} CPUs"
    )
    envelopes = [envelope("bench@example.com", "helpdesk@example.com", raw) for raw in messages]
    noop = noop_smtp(envelopes, args.senders)
    print(f"limit 2: aiosmtpd answering 250 without storing anything: {noop:.0f} 250s/s")
    print(
        f"{'database':<11} {'bare msg/s':>10} {'250s/s':>8} {'÷ bare':>7} {'÷ no-op':>8} "
        f"{'tickets/s':>9} {'÷ bare':>7} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for db in args.db.split(","):
        with (
            tempfile.TemporaryDirectory() as tmp,
            fresh_database(db, tmp, "bare") as bare_url,
            fresh_database(db, tmp, "intaked") as url,
        ):
            if bare_url is None or url is None:
                continue
            bare = bare_pipeline(bare_url, messages)
            result = intaked_run(url, envelopes, args.senders)
        accepted, filed = result["accept_rate"], result["ticket_rate"]
        print(
            f"{db:<11} {bare:>10.0f} {accepted:>8.0f} {100 * accepted / bare:>6.0f}% "
            f"{100 * accepted / noop:>7.0f}% {filed:>9.0f} {100 * filed / bare:>6.0f}% "
            f"{result['p50_ms']:>7.1f} {result['p99_ms']:>7.1f}"
        )


if __name__ == "__main__":
    main()
