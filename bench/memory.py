"""Benchmark: the memory of every intaked process through a burst of large mail and a long run.

    .venv/bin/python bench/memory.py [--baseline-tree PATH] [--messages 20000] [--settle 60]

A real ``intaked run`` (SQLite, the shipped process layout: front, back office ``intake`` with its
parse worker, back office ``outbox``; acknowledgements on, sent to bench/sink.py) is sampled every
``--sample`` seconds from ``/proc/<pid>/status`` (VmRSS; VmHWM for each process's peak), its
processes found through ``/proc/<pid>/task/*/children``. Two scenarios, each on a fresh daemon
and database:

(a) burst: 200 ordinary mails to warm up, then ``--large`` mails of ``--large-mb`` MB (a base64
    attachment) from as many concurrent SMTP sessions. Per process: RSS before the burst, peak,
    and RSS ``--settle`` seconds after the last one became a ticket.
(b) long run: ``--messages`` ordinary mails (bench/smtp_intake.py's mix) from 20 sessions.
    Per process: RSS once the first 1,000 are tickets and acknowledged, RSS once all are, and
    the growth between the two (each measured ``--quiet`` seconds after the work ended).

With ``--baseline-tree PATH`` (a second checkout, e.g. ``git worktree add --detach
../intaked-baseline 55782fe``) the same scenarios run first against that tree's code, with this
virtualenv, and its figures are printed beside this tree's.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import free_port, wait_for_port  # noqa: E402
from bench.load import envelope, send_all  # noqa: E402
from bench.smtp_intake import mixed_messages  # noqa: E402
from intaked.store.models import InboundItem, OutboxEntry  # noqa: E402

MIB = 1024 * 1024
PAGE_KIB = 1024
FRONT = "front"
ROLE_ORDER = ("front", "back office intake", "parse worker", "back office outbox")
WARM_UP_MAILS = 200
FIRST_STEP = 1_000
SENDERS = 20
WORK_TIMEOUT_SECONDS = 900.0
GROWTH_TARGET = 0.05
SETTLED_TARGET_MIB = 50
BACK_OFFICE_PEAK_TARGET_MIB = 400
FRONT_PEAK_BASE_MIB = 100
FRONT_PEAK_PER_BYTE_IN_FLIGHT = 2.5


# --------------------------------------------------------------------------- processes and /proc


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_tree(root: int) -> list[int]:
    pids, queue = [], [root]
    while queue:
        pid = queue.pop()
        pids.append(pid)
        queue += children(pid)
    return pids


def role_of(pid: int, root: int) -> str | None:
    """What an intaked process is, from its command line; None for helpers not measured."""
    if pid == root:
        return FRONT
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    if "intaked.backoffice" in args:
        return f"back office {args[args.index('intaked.backoffice') + 1]}"
    if any("spawn_main" in arg for arg in args):
        return "parse worker"
    return None  # the multiprocessing resource tracker


def memory_kib(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) of a process in KiB; None once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


@dataclass
class Sampler:
    """Samples the RSS of every process of a daemon in a thread; peaks are the VmHWM seen."""

    root: int
    interval: float
    rss: dict[str, int] = field(default_factory=dict)  # role → KiB, last sample (summed per role)
    peak: dict[str, int] = field(default_factory=dict)  # role → KiB, highest VmHWM of its processes
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> dict[str, int]:
        now: dict[str, int] = {}
        for pid in process_tree(self.root):
            role = role_of(pid, self.root)
            measured = memory_kib(pid) if role else None
            if role is None or measured is None:
                continue
            rss, hwm = measured
            now[role] = now.get(role, 0) + rss
            self.peak[role] = max(self.peak.get(role, 0), hwm)
        self.rss = now
        return now

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        thread = threading.Thread(target=self.run, name="rss-sampler", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()


# --------------------------------------------------------------------------- the daemon under test


@contextmanager
def sink() -> Iterator[int]:
    """bench/sink.py as the acknowledgements' relay (its per-message lines are not needed)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "sink.py"), str(port)], stdout=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def daemon(tree: Path, tmp: Path, relay: int) -> Iterator[tuple[subprocess.Popen[bytes], int, Engine]]:
    """``intaked run`` from ``tree``'s code (this virtualenv's interpreter) on a fresh SQLite file."""
    port = free_port()
    url = f"sqlite:///{tmp / 'intaked.db'}"
    config = tmp / "intaked.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        f'[outbound_mail]\nhost = "127.0.0.1"\nport = {relay}\nfrom_address = "helpdesk@example.com"\n'
        "[acknowledgements]\nmax_per_sender_per_hour = 100000\n"
        '[logging]\nlevel = "warning"\nformat = "json"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with (tmp / "log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "intaked", "run", "--config", str(config)],
            stdout=log,
            stderr=log,
            cwd=tree,
            env=env,
        )
        engine = create_engine(url)
        try:
            wait_for_port(port, timeout=60)
            yield proc, port, engine
        except BaseException:
            print((tmp / "log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            engine.dispose()
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)


def wait_until_quiet(engine: Engine, items: int, timeout: float = WORK_TIMEOUT_SECONDS) -> None:
    """Until ``items`` inbound items are tickets and no acknowledgement is waiting to be sent."""
    ledger, outbox = InboundItem.__table__, OutboxEntry.__table__
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            done = conn.execute(
                select(func.count()).select_from(ledger).where(ledger.c.state.in_(["done", "duplicate"]))
            ).scalar_one()
            queued = conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.state.in_(["pending", "sending"]))
            ).scalar_one()
        if done >= items and not queued:
            return
        time.sleep(0.2)
    raise SystemExit(f"not every item became a ticket within {timeout:g}s")


def send(port: int, messages: list[bytes], senders: int) -> None:
    envelopes = [envelope("bench@example.com", "helpdesk@example.com", raw) for raw in messages]
    sent, _ = send_all(port, envelopes, senders)
    refused = [s.code for s in sent if s.code != 250]
    if refused or len(sent) != len(envelopes):
        raise SystemExit(f"{len(envelopes) - len(sent) + len(refused)} messages not accepted: {refused[:5]}")


def large_mail(n: int, size: int) -> bytes:
    """A report with an attachment (base64 of random bytes, as a photo or a zip would be)."""
    head = (
        f"From: user{n}@example.com\r\nTo: helpdesk@example.com\r\nSubject: large report {n}\r\n"
        f"Message-ID: <memory-large-{n}-{random.getrandbits(64):x}@bench.example.com>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\n請看附件\r\n--b\r\n"
        'Content-Type: application/zip; name="logs.zip"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    ).encode()
    tail = b"--b--\r\n"
    room = size - len(head) - len(tail)
    payload = base64.encodebytes(os.urandom(room * 57 // 78)).replace(b"\n", b"\r\n")
    return head + payload + tail


# --------------------------------------------------------------------------- the two scenarios


@dataclass
class Burst:
    before: dict[str, int]
    peak: dict[str, int]
    settled: dict[str, int]
    seconds: float  # from the first byte sent until every large mail was a ticket


@dataclass
class LongRun:
    after_first: dict[str, int]
    after_all: dict[str, int]
    peak: dict[str, int]
    seconds: float


def burst(tree: Path, args: argparse.Namespace, relay: int) -> Burst:
    with tempfile.TemporaryDirectory() as tmp, daemon(tree, Path(tmp), relay) as (proc, port, engine):
        sampler = Sampler(proc.pid, args.sample)
        with sampler.running():
            send(port, mixed_messages(WARM_UP_MAILS), SENDERS)
            wait_until_quiet(engine, WARM_UP_MAILS)
            time.sleep(args.quiet)
            before = sampler.sample()
            mails = [large_mail(n, args.large_mb * 1_000_000) for n in range(args.large)]
            start = time.monotonic()
            send(port, mails, args.large)
            del mails
            wait_until_quiet(engine, WARM_UP_MAILS + args.large)
            seconds = time.monotonic() - start
            time.sleep(args.settle)
            settled = sampler.sample()
        return Burst(before, dict(sampler.peak), settled, seconds)


def long_run(tree: Path, args: argparse.Namespace, relay: int) -> LongRun:
    messages = mixed_messages(args.messages)
    with tempfile.TemporaryDirectory() as tmp, daemon(tree, Path(tmp), relay) as (proc, port, engine):
        sampler = Sampler(proc.pid, args.sample)
        with sampler.running():
            start = time.monotonic()
            send(port, messages[:FIRST_STEP], SENDERS)
            wait_until_quiet(engine, FIRST_STEP)
            time.sleep(args.quiet)
            after_first = sampler.sample()
            send(port, messages[FIRST_STEP:], SENDERS)
            wait_until_quiet(engine, len(messages))
            seconds = time.monotonic() - start
            time.sleep(args.quiet)
            after_all = sampler.sample()
        return LongRun(after_first, after_all, dict(sampler.peak), seconds)


# --------------------------------------------------------------------------- report


def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / PAGE_KIB:.0f}"


def roles(*maps: dict[str, int]) -> list[str]:
    seen = {role for found in maps for role in found}
    return [r for r in ROLE_ORDER if r in seen] + sorted(seen - set(ROLE_ORDER))


def print_burst(results: dict[str, Burst], in_flight_mib: float) -> None:
    front_target = FRONT_PEAK_BASE_MIB + FRONT_PEAK_PER_BYTE_IN_FLIGHT * in_flight_mib
    print(
        f"\n(a) burst: {in_flight_mib:.0f} MiB in flight; targets: front peak ≤ {front_target:.0f} MiB, "
        f"back office peak ≤ {BACK_OFFICE_PEAK_TARGET_MIB} MiB, settled ≤ before + {SETTLED_TARGET_MIB} MiB"
    )
    print(f"{'process':<20} {'code':<9} {'before':>7} {'peak':>7} {'settled':>8} {'Δ':>6}  (MiB)")
    for role in roles(*(r.peak for r in results.values())):
        for label, result in results.items():
            before, peak, settled = result.before.get(role), result.peak.get(role), result.settled.get(role)
            delta = f"{(settled - before) / PAGE_KIB:+.0f}" if settled and before else "-"
            limit = front_target if role == FRONT else BACK_OFFICE_PEAK_TARGET_MIB
            verdict = []
            if peak is not None and peak / PAGE_KIB > limit:
                verdict.append("peak over target")
            if settled and before and (settled - before) / PAGE_KIB > SETTLED_TARGET_MIB:
                verdict.append("not settled")
            print(
                f"{role:<20} {label:<9} {mib(before):>7} {mib(peak):>7} {mib(settled):>8} {delta:>6}"
                f"  {', '.join(verdict) or 'ok'}"
            )
    for label, result in results.items():
        print(f"{label}: the large mails were tickets {result.seconds:.1f} s after the first byte")


def print_long_run(results: dict[str, LongRun], count: int) -> None:
    print(
        f"\n(b) {count:,} mixed mails: RSS after {FIRST_STEP:,} and after {count:,} "
        f"(target: growth ≤ {GROWTH_TARGET:.0%})"
    )
    print(f"{'process':<20} {'code':<9} {'1,000':>7} {'all':>7} {'growth':>7} {'peak':>7}  (MiB)")
    for role in roles(*(r.peak for r in results.values())):
        for label, result in results.items():
            first, last = result.after_first.get(role), result.after_all.get(role)
            growth = (last - first) / first if first and last else None
            print(
                f"{role:<20} {label:<9} {mib(first):>7} {mib(last):>7} "
                f"{'-' if growth is None else f'{growth:+.1%}':>7} {mib(result.peak.get(role)):>7}"
                f"  {'ok' if growth is not None and growth <= GROWTH_TARGET else 'over target'}"
            )
    for label, result in results.items():
        print(f"{label}: {count:,} mails filed and acknowledged in {result.seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline-tree", type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--messages", type=int, default=20_000, help="mails of scenario (b)")
    parser.add_argument("--large", type=int, default=8, help="concurrent large mails of scenario (a)")
    parser.add_argument("--large-mb", type=int, default=25, help="size of each, in MB (10^6 bytes)")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds after the burst")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds after other work before a sample")
    parser.add_argument("--sample", type=float, default=0.2, help="sampling interval, seconds")
    parser.add_argument("--only", choices=["burst", "long"], help="run one scenario")
    args = parser.parse_args()
    trees = {"baseline": args.baseline_tree.resolve()} if args.baseline_tree else {}
    trees["this"] = REPO
    print(f"{os.cpu_count()} CPUs; trees: " + ", ".join(f"{label} {path}" for label, path in trees.items()))
    with sink() as relay:
        if args.only != "long":
            bursts = {label: burst(tree, args, relay) for label, tree in trees.items()}
            print_burst(bursts, args.large * args.large_mb * 1_000_000 / MIB)
        if args.only != "burst":
            runs = {label: long_run(tree, args, relay) for label, tree in trees.items()}
            print_long_run(runs, args.messages)


if __name__ == "__main__":
    main()
