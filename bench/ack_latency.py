"""Benchmark: acknowledgements delivered to a local SMTP sink, and inbound 250 → ack latency.

    .venv/bin/python bench/ack_latency.py [--messages 2000] [--senders 20] [--db sqlite,postgresql]

A real ``intaked run`` takes mail from N concurrent SMTP senders, once as fast as they can (a
burst) and once paced at ``--rate`` reports/s in total; its outbox sends each new ticket's
acknowledgement to an aiosmtpd sink in a process of its own (bench/sink.py). Per message: time
from the inbound 250 reply to the ack arriving at the sink (matched by In-Reply-To); acks/s over
the whole run.
Baseline in the same run: ``smtplib`` sending the same number of ready-made mails to the same sink
over one connection (what the sink and the SMTP conversation alone allow).
"""

from __future__ import annotations

import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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
from bench.load import envelope, send_all  # noqa: E402


def report(n: int, run: str) -> bytes:
    return (
        f"From: 員工{n} <user{n}@example.com>\r\nTo: helpdesk@example.com\r\nSubject: 印表機無法列印 {n}\r\n"
        f"Message-ID: <ack-bench-{run}-{n}@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "三樓印表機卡紙，請協助。\r\n"
    ).encode()


class Sink:
    """bench/sink.py running in its own process; ``arrivals`` maps In-Reply-To to arrival time."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[str, float] = {}
        self._proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "sink.py"), str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for_port(self.port)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            mid, at = line.split()
            self.arrivals[mid] = float(at)

    def wait_for(self, mids: set[str], timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not mids <= self.arrivals.keys() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(10)


def baseline(sink: Sink, count: int) -> float:
    """smtplib sending ready-made mails over one connection: what the sink itself takes."""
    mails = [
        report(n, "baseline").replace(b"Message-ID:", f"In-Reply-To: <baseline-{n}>\r\nX-Id:".encode())
        for n in range(count)
    ]
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", sink.port) as client:
        for mail in mails:
            client.sendmail("helpdesk@example.com", ["user0@example.com"], mail)
    sink.wait_for({f"baseline-{n}" for n in range(count)})
    return count / (time.monotonic() - start)


def run_intaked(
    url: str, sink: Sink, count: int, senders: int, run: str, rate: float = 0.0
) -> dict[str, float]:
    port = free_port()
    accepted: dict[str, float] = {}
    with intaked_process(
        f'[database]\nurl = "{url}"\n[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        f'[outbound_mail]\nhost = "127.0.0.1"\nport = {sink.port}\n'
        'from_address = "helpdesk@example.com"\n'
        "[acknowledgements]\nmax_per_sender_per_hour = 100000\n"
        '[logging]\nlevel = "warning"\nformat = "json"\n'
    ):
        wait_for_port(port)
        envelopes = [
            envelope(f"user{n}@example.com", "helpdesk@example.com", report(n, run)) for n in range(count)
        ]
        start = time.monotonic()
        sent, _ = send_all(port, envelopes, senders, rate)
        for record in sent:
            accepted[f"ack-bench-{run}-{record.index}@example.com"] = record.reply
        sink.wait_for(set(accepted))
    arrivals = {mid: sink.arrivals[mid] for mid in accepted if mid in sink.arrivals}
    if len(arrivals) != count:
        raise SystemExit(f"only {len(arrivals)} of {count} acknowledgements arrived")
    latencies = sorted(arrivals[mid] - accepted[mid] for mid in accepted)
    return {
        "rate": count / (max(arrivals.values()) - start),
        "p50_ms": percentile_ms(latencies, 0.50),
        "p99_ms": percentile_ms(latencies, 0.99),
    }


def main() -> None:
    parser = arguments(__doc__, 2000)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="offered reports/s of the paced run")
    args = parser.parse_args()
    use_back_office(args.back_office)
    sink = Sink()
    try:
        limit = baseline(sink, args.messages)
        print(
            f"{args.messages} reports from {args.senders} concurrent senders; "
            f"baseline smtplib → sink: {limit:.0f}/s"
        )
        print(f"{'database':<11} {'offered':>9} {'acks/s':>7} {'÷ baseline':>10} {'p50 ms':>7} {'p99 ms':>7}")
        for db in args.db.split(","):
            for rate in (0.0, args.rate):
                run = f"{db}-{rate:g}"
                with tempfile.TemporaryDirectory() as tmp, fresh_database(db, tmp, "intaked") as url:
                    if url is None:
                        break
                    result = run_intaked(url, sink, args.messages, args.senders, run, rate)
                offered = f"{rate:g}/s" if rate else "burst"
                print(
                    f"{db:<11} {offered:>9} {result['rate']:>7.0f} {100 * result['rate'] / limit:>9.0f}% "
                    f"{result['p50_ms']:>7.0f} {result['p99_ms']:>7.0f}"
                )
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
