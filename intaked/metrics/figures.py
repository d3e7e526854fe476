"""The figures read from the shared database: what every process (the front, the back office,
the outbox sender, on any node) has left there, counted by short read-only queries at scrape time.

:func:`read_figures` runs them all in one read-only connection and returns a :class:`StoreFigures`;
the Prometheus collector (intaked/metrics/collector.py) and ``intaked status`` both use it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import Column, ColumnElement, Connection, Engine, Table, func, select

from intaked.store.engine import read_snapshot
from intaked.store.models import (
    call_table,
    imap_mailbox_table,
    inbound_item_table,
    outbox_table,
    page_table,
    ticket_table,
    worker_table,
)
from intaked.store.tables.base import CALL_OUTCOMES, PAGE_STATES, TICKET_STATUSES
from intaked.store.types import utcnow

#: Ledger states still waiting to become tickets.
UNFINISHED_ITEM_STATES = ("received", "processing")
#: Outbox states still waiting to be sent.
UNSENT_OUTBOX_STATES = ("pending", "sending")
#: SLA target → the tickets' column set when a warning was sent.
WARNED_COLUMNS = {"response": "response_warned_at", "resolution": "resolution_warned_at"}
#: SLA target → the tickets' column set when it was breached.
BREACHED_COLUMNS = {
    "triage": "triage_breached_at",
    "response": "response_breached_at",
    "resolution": "resolution_breached_at",
}

Counts = dict[tuple[str, ...], int]


@dataclass(frozen=True, slots=True)
class WorkerBeat:
    """One live worker row and how old its last heartbeat is."""

    id: str
    node: str
    role: str
    age_seconds: float
    lease_seconds: float
    host: str | None = None  # its machine (0014; None in rows written before)

    @property
    def fresh(self) -> bool:
        return self.age_seconds <= self.lease_seconds


@dataclass(frozen=True, slots=True)
class MailboxPoll:
    """One IMAP mailbox's state row: its last successful poll and its last error (cleared by the
    next successful poll)."""

    name: str
    poll_age_seconds: float | None
    last_error: str | None


@dataclass
class StoreFigures:
    """Everything counted in one pass; ages in seconds (0 when there is nothing waiting)."""

    inbound_items: Counts = field(default_factory=dict)  # (channel, state)
    ledger_backlog: int = 0
    ledger_oldest_age: float = 0.0
    quarantined: int = 0
    tickets: Counts = field(default_factory=dict)  # (status,)
    outbox_rows: Counts = field(default_factory=dict)  # (kind, state)
    outbox_oldest_age: float = 0.0
    pages: Counts = field(default_factory=dict)  # (state,)
    calls: Counts = field(default_factory=dict)  # (outcome,)
    sla_warnings: Counts = field(default_factory=dict)  # (target,)
    sla_breaches: Counts = field(default_factory=dict)  # (target,)
    mailboxes: list[MailboxPoll] = field(default_factory=list)
    workers: list[WorkerBeat] = field(default_factory=list)


def read_figures(engine: Engine, now: dt.datetime | None = None) -> StoreFigures:
    """Count everything in one read-only connection (raises what the database raises)."""
    now = now or utcnow()
    figures = StoreFigures()
    with read_snapshot(engine).connect() as conn:
        items = inbound_item_table
        figures.inbound_items = _grouped(conn, items, items.c.channel, items.c.state)
        figures.ledger_backlog, figures.ledger_oldest_age = _waiting_age(
            conn, items, items.c.received_at, UNFINISHED_ITEM_STATES, now
        )
        figures.quarantined = sum(
            n for (_, state), n in figures.inbound_items.items() if state == "quarantined"
        )
        figures.tickets = _seeded(TICKET_STATUSES, _grouped(conn, ticket_table, ticket_table.c.status))
        figures.outbox_rows = _grouped(conn, outbox_table, outbox_table.c.kind, outbox_table.c.state)
        _, figures.outbox_oldest_age = _waiting_age(
            conn, outbox_table, outbox_table.c.created_at, UNSENT_OUTBOX_STATES, now
        )
        figures.pages = _seeded(PAGE_STATES, _grouped(conn, page_table, page_table.c.state))
        figures.calls = _seeded(CALL_OUTCOMES, _grouped(conn, call_table, call_table.c.outcome))
        figures.sla_warnings = _stamped(conn, WARNED_COLUMNS)
        figures.sla_breaches = _stamped(conn, BREACHED_COLUMNS)
        figures.mailboxes = read_mailboxes(conn, now)
        figures.workers = read_workers(conn, now)
    return figures


def _grouped(conn: Connection, table: Table, *columns: Column[str]) -> Counts:
    """Rows of ``table`` counted by the values of ``columns``."""
    query = select(*columns, func.count()).select_from(table).group_by(*columns)
    return {tuple(str(v) for v in row[:-1]): int(row[-1]) for row in conn.execute(query)}


def _seeded(values: tuple[str, ...], counts: Counts) -> Counts:
    """``counts`` of a one-label family with every allowed value present (0 when no row has it)."""
    return {(value,): 0 for value in values} | counts


def waiting(
    conn: Connection, table: Table, since: Column[dt.datetime], where: ColumnElement[bool]
) -> tuple[int, dt.datetime | None]:
    """How many rows of ``table`` match ``where``, and the oldest ``since`` among them (None: none)."""
    row = conn.execute(select(func.count(), func.min(since)).select_from(table).where(where)).one()
    return int(row[0]), row[1]


def _waiting_age(
    conn: Connection, table: Table, since: Column[dt.datetime], states: tuple[str, ...], now: dt.datetime
) -> tuple[int, float]:
    """How many rows of ``table`` are in ``states``, and the age of the oldest (0 when none)."""
    count, oldest = waiting(conn, table, since, table.c.state.in_(states))
    return count, _age(now, oldest) if oldest is not None else 0.0


def _stamped(conn: Connection, columns: dict[str, str]) -> Counts:
    """Per target, how many tickets have its timestamp column set."""
    t = ticket_table
    query = select(*(func.count(t.c[column]) for column in columns.values())).select_from(t)
    row = conn.execute(query).one()
    return {(target,): int(count) for target, count in zip(columns, row, strict=True)}


def read_mailboxes(conn: Connection, now: dt.datetime) -> list[MailboxPoll]:
    """The state row of every IMAP mailbox that has been polled or has failed."""
    table = imap_mailbox_table
    rows = conn.execute(select(table.c.name, table.c.last_poll_at, table.c.last_error).order_by(table.c.name))
    return [
        MailboxPoll(row.name, _age(now, row.last_poll_at) if row.last_poll_at else None, row.last_error)
        for row in rows
    ]


def read_workers(conn: Connection, now: dt.datetime) -> list[WorkerBeat]:
    """Every worker row still alive, with the age of its heartbeat."""
    w = worker_table
    rows = conn.execute(
        select(w.c.id, w.c.node, w.c.role, w.c.heartbeat_at, w.c.lease_seconds, w.c.host)
        .where(w.c.state == "alive")
        .order_by(w.c.role, w.c.id)
    )
    return [
        WorkerBeat(
            row.id, row.node, row.role, _age(now, row.heartbeat_at), float(row.lease_seconds), row.host
        )
        for row in rows
    ]


def _age(now: dt.datetime, then: dt.datetime) -> float:
    return max(0.0, (now - then).total_seconds())
