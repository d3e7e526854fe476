"""PostgreSQL fails over under two nodes taking mail: the primary dies, its synchronous standby is
promoted, and both nodes write to the new primary within 15 s of the promotion; every mail
answered 250 is on the new primary and becomes its ticket (issue 17: several nodes).

The test starts its own pair of clusters (tests/support/pgcluster.py) and two real daemons
(``intaked run``) whose URL names both hosts, libpq style. A sender per node behaves like an
MTA: a 451 or a refused connection means "try the same mail again shortly"."""

from __future__ import annotations

import re
import smtplib
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from intaked.store.models import inbound_item_table, message_table
from tests.support.pgcluster import ReplicatedPair, server_binaries_missing
from tests.support.processes import DaemonProcess
from tests.support.waiting import wait_until
from tests.support.workers import free_port

#: The promise (docs/operations.md, "PostgreSQL: replication and failover").
BACK_WITHIN_SECONDS = 15.0
#: How long the cluster is left without a primary: every pool meets the dead server meanwhile.
OUTAGE_SECONDS = 2.0
MESSAGE_ID = re.compile(rb"^Message-ID: <([^>]+)>", re.MULTILINE | re.IGNORECASE)


class MailStream:
    """A thread sending one report after another to ``port`` until stopped, each until it is
    answered 250; it records when each Message-ID was accepted and how often it was deferred."""

    def __init__(self, node: str, port: int) -> None:
        self.node = node
        self.port = port
        self.accepted: dict[str, float] = {}
        self.deferred: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mail-to-{node}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            message_id = f"{self.node}-{number}@failover.example.com"
            while not self._stop.is_set() and not self._send(message_id):
                self.deferred[message_id] += 1
                time.sleep(0.1)
            time.sleep(0.05)

    def _send(self, message_id: str) -> bool:
        raw = (
            f"From: user@example.com\r\nTo: helpdesk@example.com\r\nSubject: 印表機 {message_id}\r\n"
            f"Message-ID: <{message_id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n無法列印。\r\n"
        ).encode()
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                client.sendmail("user@example.com", ["helpdesk@example.com"], raw)
        except (smtplib.SMTPException, OSError):
            return False
        self.accepted[message_id] = time.monotonic()
        return True

    def first_accepted_after(self, moment: float) -> float | None:
        return min((at for at in list(self.accepted.values()) if at > moment), default=None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def start_node(tmp_path: Path, name: str, url: str) -> tuple[DaemonProcess, int]:
    port = free_port()
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[daemon]\nnode_name = "{name}"\n[metrics]\nlisten = ""\n'
        f'[smtp_intake]\nlisten = "127.0.0.1:{port}"\n'
        "[intake]\nmax_attempts = 100\nretry_base_seconds = 0.2\n[acknowledgements]\nenabled = false\n"
        '[logging]\nlevel = "info"\nformat = "json"\n',
        encoding="utf-8",
    )
    node = DaemonProcess(config, tmp_path / f"{name}.log")
    node.wait_started(60)
    return node, port


def ledger(engine: Engine) -> tuple[Counter[str], dict[str, int | None], int]:
    """(ledger items per Message-ID, each Message-ID's ticket, items not yet done)."""
    items = inbound_item_table
    with engine.connect() as conn:
        raws = conn.execute(select(items.c.raw)).scalars().all()
        waiting = conn.execute(
            select(func.count()).select_from(items).where(items.c.state.in_(["received", "processing"]))
        ).scalar_one()
        rows = conn.execute(select(message_table.c.header_message_id, message_table.c.ticket_id)).all()
    per_id: Counter[str] = Counter()
    for raw in raws:
        found = MESSAGE_ID.search(zlib.decompress(raw))
        if found:
            per_id[found.group(1).decode()] += 1
    return per_id, {row.header_message_id: row.ticket_id for row in rows}, int(waiting)


@pytest.mark.slow
def test_nodes_carry_on_on_the_promoted_standby_and_lose_nothing_answered(tmp_path: Path) -> None:
    reason = server_binaries_missing()
    if reason:
        pytest.skip(reason)
    with ReplicatedPair() as pair:
        nodes: list[DaemonProcess] = []
        streams: list[MailStream] = []
        try:
            for name in ("node-a", "node-b"):  # one after the other: the first migrates the schema
                node, port = start_node(tmp_path, name, pair.multi_host_url())
                nodes.append(node)
                streams.append(MailStream(name, port))
            for node in nodes:  # every process of both nodes is connected to the primary
                node.wait_back_office_ready()
            wait_until(
                lambda: all(len(s.accepted) >= 5 for s in streams), what="mail taken before the failover"
            )

            stopped_at = time.monotonic()
            pair.primary.stop("immediate")
            wait_until(
                lambda: all(s.deferred for s in streams), timeout=20, what="451s while there is no primary"
            )
            outage_left = stopped_at + OUTAGE_SECONDS - time.monotonic()
            time.sleep(max(0.0, outage_left))  # a failover manager takes a while too
            promoted_at = time.monotonic()
            pair.standby.promote()
            wait_until(
                lambda: all(s.first_accepted_after(promoted_at) for s in streams),
                timeout=60,
                what="a 250 from each node after the promotion",
            )
            back_after = {s.node: (s.first_accepted_after(promoted_at) or 0) - promoted_at for s in streams}
            print(
                f"promoted {promoted_at - stopped_at:.1f} s after the stop; first 250 after it: {back_after}"
            )
            time.sleep(1.0)  # some more mail on the new primary
            for stream in streams:
                stream.stop()
            assert all(after < BACK_WITHIN_SECONDS for after in back_after.values()), back_after
            check_nothing_answered_was_lost(pair, streams)
            for node in nodes:
                check_each_process_says_where_it_writes(node, pair)
        finally:
            for stream in streams:
                stream.stop()
            for node in nodes:
                node.stop()


def check_nothing_answered_was_lost(pair: ReplicatedPair, streams: list[MailStream]) -> None:
    accepted = {mid: stream for stream in streams for mid in stream.accepted}
    assert len(accepted) >= 20
    engine = create_engine(pair.standby.url(pair.database))

    def settled() -> tuple[Counter[str], dict[str, int | None], int] | None:
        found = ledger(engine)
        return found if found[2] == 0 and accepted.keys() <= found[1].keys() else None

    try:
        per_id, tickets, waiting = wait_until(
            settled, timeout=60, what="every accepted mail filed on the new primary"
        )
    finally:
        engine.dispose()
    lost = [mid for mid in accepted if per_id[mid] == 0]
    assert not lost, f"answered 250 but not on the new primary: {lost}"
    # A mail deferred with a 451 whose commit had in fact reached the standby is in the ledger
    # twice (the sender sent it again): never more often than it was sent.
    over = {mid: per_id[mid] for mid, stream in accepted.items() if per_id[mid] > 1 + stream.deferred[mid]}
    assert not over, f"more ledger items than sendings: {over}"
    assert all(tickets[mid] is not None for mid in accepted), "every accepted mail is a ticket's message"
    assert waiting == 0


def check_each_process_says_where_it_writes(node: DaemonProcess, pair: ReplicatedPair) -> None:
    """Each process's last ``store_server`` names the new primary, and the front, connected since
    the start, says it moved from the old one."""
    last: dict[str, dict[str, object]] = {}
    for event in node.events():
        if event.get("event") == "store_server":
            last[str(event.get("process", "front"))] = event
    assert set(last) == {"front", "back_office.intake", "back_office.outbox"}, last
    assert all(event["server"] == pair.standby.host for event in last.values()), last
    assert last["front"]["previous"] == pair.primary.host, last
