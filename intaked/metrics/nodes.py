"""The nodes of a cluster as an operator sees them (``intaked status``): every daemon that shares
the store, from the ``workers`` rows of its processes, and what each holds.

A node is ``alive`` while one of its processes beats within its lease, ``silent`` when its
processes are still marked alive but none beat within a lease (a frozen or cut-off node, about to
be taken for dead), and ``gone`` when every process of it was marked gone (stopped, or found dead
by another node; its claims and leases were released then). Gone nodes are listed until their
rows are forgotten (a day after).

What a node holds: the IMAP mailboxes whose lease one of its processes holds and has not let run
out (``mailbox helpdesk``), and the periodic jobs whose latest slot it took (``job_runs``:
``sla_check`` and the like run on one node per interval), shown as ``job sla_check``, with
``(running)`` while that pass has not finished.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from intaked.store.models import imap_mailbox_table, job_run_table, worker_table


@dataclass(slots=True)
class NodeView:
    """One node: its state, its processes' roles (alive ones), version(s), the age of its
    freshest heartbeat, and what it holds (e.g. ``mailbox helpdesk``)."""

    name: str
    state: str
    roles: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    heartbeat_age_seconds: float | None = None
    gone_reason: str | None = None
    holds: list[str] = field(default_factory=list)


def read_nodes(conn: Connection, now: dt.datetime) -> list[NodeView]:
    """Every node with a ``workers`` row, alive ones first, then by name."""
    w = worker_table
    rows = conn.execute(
        select(
            w.c.node, w.c.role, w.c.state, w.c.version, w.c.heartbeat_at, w.c.lease_seconds, w.c.gone_reason
        ).order_by(w.c.node, w.c.heartbeat_at)
    ).all()
    by_node: dict[str, list[Row]] = {}
    for row in rows:
        by_node.setdefault(row.node, []).append(
            Row(
                row.role,
                row.state,
                row.version,
                _age(now, row.heartbeat_at),
                row.lease_seconds,
                row.gone_reason,
            )
        )
    nodes = [_node(name, members) for name, members in by_node.items()]
    holds = _leases(conn, now)
    for node_name, jobs in _latest_jobs(conn).items():
        holds.setdefault(node_name, []).extend(jobs)
    for node in nodes:
        node.holds.extend(holds.get(node.name, []))
    order = {"alive": 0, "silent": 1, "gone": 2}
    return sorted(nodes, key=lambda node: (order[node.state], node.name))


@dataclass(frozen=True, slots=True)
class Row:
    role: str
    state: str
    version: str | None
    age: float
    lease: float
    gone_reason: str | None


def _leases(conn: Connection, now: dt.datetime) -> dict[str, list[str]]:
    """Node → the mailboxes whose unexpired lease a process of it holds."""
    boxes, w = imap_mailbox_table, worker_table
    rows = conn.execute(
        select(boxes.c.name, w.c.node, boxes.c.lease_expires_at)
        .join(w, w.c.id == boxes.c.lease_holder)
        .order_by(boxes.c.name)
    )
    held: dict[str, list[str]] = {}
    for row in rows:
        if row.lease_expires_at is not None and _age(now, row.lease_expires_at) == 0:
            held.setdefault(row.node, []).append(f"mailbox {row.name}")
    return held


def _latest_jobs(conn: Connection) -> dict[str, list[str]]:
    """Node → the jobs whose latest slot it took."""
    runs = job_run_table
    latest = select(runs.c.job, func.max(runs.c.slot_start).label("slot")).group_by(runs.c.job).subquery()
    rows = conn.execute(
        select(runs.c.job, runs.c.node, runs.c.finished_at)
        .join(latest, (latest.c.job == runs.c.job) & (latest.c.slot == runs.c.slot_start))
        .order_by(runs.c.job)
    )
    held: dict[str, list[str]] = {}
    for row in rows:
        running = " (running)" if row.finished_at is None else ""
        held.setdefault(row.node, []).append(f"job {row.job}{running}")
    return held


def _node(name: str, rows: Sequence[Row]) -> NodeView:
    alive = [row for row in rows if row.state == "alive"]
    if not alive:
        last = min(rows, key=lambda row: row.age)
        return NodeView(name, "gone", heartbeat_age_seconds=last.age, gone_reason=last.gone_reason)
    fresh = any(row.age <= row.lease for row in alive)
    return NodeView(
        name,
        "alive" if fresh else "silent",
        roles=sorted({row.role for row in alive}),
        versions=sorted({row.version for row in alive if row.version}),
        heartbeat_age_seconds=min(row.age for row in alive),
    )


def _age(now: dt.datetime, then: dt.datetime) -> float:
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return max(0.0, round((now - then).total_seconds(), 1))
