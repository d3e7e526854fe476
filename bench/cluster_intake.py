"""Benchmark: SMTP intake spread over 1, 2 and 3 whole daemons ("nodes") on one PostgreSQL
database, each node's figure next to the single node's of the same run.

    .venv/bin/python bench/cluster_intake.py [--messages 3000] [--senders 24] [--nodes 1,2,3]

For each cluster size it starts that many ``intaked run`` processes (each with its own node name
and SMTP port, the shipped process layout) on a fresh schema, sends the same messages over
``--senders`` concurrent SMTP sessions split evenly across the nodes, and measures: 250s per
second, DATA → 250 at the 99th percentile, tickets per second (until every message is a ticket),
and the database transactions committed per ticket (``pg_stat_database.xact_commit`` before and
after, so it counts every node's work: capture, filing, acknowledgements off, heartbeats, polls).
On a 2-core machine the nodes share the same CPUs: the figures show what coordinating several
nodes costs, not how they scale out.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import free_port, intaked_process, percentile_ms, wait_for_port  # noqa: E402
from bench.load import Envelope, Sent, envelope, send_all  # noqa: E402
from bench.smtp_intake import mixed_messages  # noqa: E402
from intaked.store.migrate import upgrade  # noqa: E402
from intaked.store.models import InboundItem  # noqa: E402
from tests.support.databases import pg_database, pg_unavailable_reason  # noqa: E402


def node_config(url: str, port: int) -> str:
    return (
        f'[database]\nurl = "{url}"\n[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        "[acknowledgements]\nenabled = false\n"  # measured on their own by bench/ack_latency.py
        '[metrics]\nlisten = ""\n'
        '[logging]\nlevel = "warning"\nformat = "json"\n'
    )


def commits(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )


def spread(ports: list[int], envelopes: list[Envelope], senders: int) -> tuple[list[Sent], float]:
    """Every node gets an even share of the messages and of the sessions, all at once."""
    results: list[tuple[list[Sent], float]] = [([], 0.0)] * len(ports)

    def send(index: int) -> None:
        share = envelopes[index :: len(ports)]
        results[index] = send_all(ports[index], share, max(1, senders // len(ports)))

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(ports))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = [s for part, _ in results for s in part]
    return sent, time.monotonic() - started


def wait_filed(engine: Engine, count: int) -> None:
    items = InboundItem.__table__
    while True:
        with engine.connect() as conn:
            done = conn.execute(
                select(func.count()).select_from(items).where(items.c.state == "done")
            ).scalar_one()
        if done >= count:
            return
        time.sleep(0.05)


def run_cluster(nodes: int, envelopes: list[Envelope], senders: int) -> dict[str, float]:
    with pg_database() as url:
        engine = create_engine(url)
        upgrade(engine)
        ports = [free_port() for _ in range(nodes)]
        with ExitStack() as stack:
            for index, port in enumerate(ports):
                config = node_config(url, port)
                stack.enter_context(intaked_process(config, f'node_name = "bench-{index}"\n'))
            for port in ports:
                wait_for_port(port)
            time.sleep(2.0)  # every node's back office up before the clock starts
            before = commits(engine)
            start = time.perf_counter()
            sent, wall = spread(ports, envelopes, senders)
            refused = [s for s in sent if s.code != 250]
            if refused or len(sent) != len(envelopes):
                raise SystemExit(f"{len(refused)} refused, {len(envelopes) - len(sent)} not sent")
            wait_filed(engine, len(envelopes))
            filed = time.perf_counter() - start
            after = commits(engine)
        engine.dispose()
    latencies = sorted(s.reply - s.data_end for s in sent)
    return {
        "accept_rate": len(envelopes) / wall,
        "p99_ms": percentile_ms(latencies, 0.99),
        "ticket_rate": len(envelopes) / filed,
        "commits_per_ticket": (after - before) / len(envelopes),
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=24)
    parser.add_argument("--nodes", default="1,2,3")
    args = parser.parse_args()
    if reason := pg_unavailable_reason():
        raise SystemExit(f"PostgreSQL is needed: {reason}")
    messages = mixed_messages(args.messages)
    envelopes = [envelope("bench@example.com", "helpdesk@example.com", raw) for raw in messages]
    print(f"{args.messages} mixed messages, {args.senders} senders, {os.cpu_count()} CPUs, PostgreSQL")
    print(
        f"{'nodes':>5} {'250s/s':>8} {'÷ 1 node':>9} {'p99 ms':>7} {'÷ 1 node':>9} "
        f"{'tickets/s':>9} {'÷ 1 node':>9} {'commits/ticket':>15} {'- 1 node':>9}"
    )
    base: dict[str, float] | None = None
    for nodes in (int(n) for n in args.nodes.split(",")):
        result = run_cluster(nodes, envelopes, args.senders)
        base = base or result
        ratio = {key: 100 * result[key] / base[key] for key in ("accept_rate", "p99_ms", "ticket_rate")}
        extra = result["commits_per_ticket"] - base["commits_per_ticket"]
        print(
            f"{nodes:>5} {result['accept_rate']:>8.0f} {ratio['accept_rate']:>8.0f}% "
            f"{result['p99_ms']:>7.1f} {ratio['p99_ms']:>8.0f}% "
            f"{result['ticket_rate']:>9.0f} {ratio['ticket_rate']:>8.0f}% "
            f"{result['commits_per_ticket']:>15.2f} {extra:>+9.2f}"
        )


if __name__ == "__main__":
    main()
