"""Whether intaked is ready: the checks ``/readyz`` and ``intaked status`` report.

- ``database``: the store answers a query;
- ``schema``: its Alembic revision is the head this version of intaked expects;
- ``workers``: every process this node should run (the front; the back office and the outbox
  sender when they are processes of their own) has a live row in ``workers`` whose heartbeat is
  younger than its lease, and no live row of this node is silent for longer than its lease;
- ``imap.<name>``: each enabled mailbox's last pass succeeded (its state row has a successful
  poll and no error after it: the IMAP worker clears ``last_error`` on every successful poll).

Each check is a :class:`Check` (name, passed, detail); ready when all passed. A check that
cannot run because the database is down fails with the error as its detail.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, text

from intaked.config import Settings
from intaked.metrics.figures import MailboxPoll, WorkerBeat, read_mailboxes, read_workers
from intaked.store.engine import read_only
from intaked.store.migrate import current_revision, head_revision
from intaked.store.settle import describe_error
from intaked.store.types import utcnow

FRONT_ROLE = "front"
INTAKE_ROLE = "back_office.intake"
OUTBOX_ROLE = "back_office.outbox"


@dataclass(frozen=True, slots=True)
class Check:
    """One readiness check and its outcome."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Readiness:
    """All the checks; ready when every one passed."""

    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.passed for check in self.checks)

    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.passed]

    def as_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "checks": [asdict(check) for check in self.checks]}


def expected_roles(settings: Settings) -> tuple[str, ...]:
    """The worker roles this node runs with these settings."""
    daemon = settings.daemon
    if daemon.back_office != "process":
        return (FRONT_ROLE,)
    if daemon.outbox != "process":
        return (FRONT_ROLE, INTAKE_ROLE)
    return (FRONT_ROLE, INTAKE_ROLE, OUTBOX_ROLE)


def check_readiness(settings: Settings, engine: Engine, node: str | None = None) -> Readiness:
    """Run every check (blocking: call it off the event loop). ``node``: the node whose workers
    are checked (a daemon passes its own); None: ``daemon.node_name``, or when that is empty
    (a command run beside the daemons) every node whose workers run on this machine."""
    try:
        with read_only(engine).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        error = describe_error(exc)
        names = ["database", "schema", "workers", *_mailbox_checks(settings)]
        return Readiness(tuple(Check(name, False, error if name == "database" else "") for name in names))
    checks = [Check("database", True, "reachable"), _schema_check(engine)]
    try:
        now = utcnow()
        with read_only(engine).connect() as conn:
            workers = read_workers(conn, now)
            mailboxes = {m.name: m for m in read_mailboxes(conn, now)}
    except Exception as exc:  # no workers table yet (an old schema), or the store went away
        error = describe_error(exc)
        checks.append(Check("workers", False, error))
        checks += [Check(name, False, error) for name in _mailbox_checks(settings)]
        return Readiness(tuple(checks))
    checks.append(_workers_of(settings, node or settings.daemon.node_name or None, workers))
    checks += [
        mailbox_check(name, mailboxes.get(name.removeprefix("imap."))) for name in _mailbox_checks(settings)
    ]
    return Readiness(tuple(checks))


def _workers_of(settings: Settings, node: str | None, workers: list[WorkerBeat]) -> Check:
    """The ``workers`` check of ``node``, or of every node on this machine."""
    roles = expected_roles(settings)
    if node is not None:
        return workers_check(roles, node, workers)
    host = socket.gethostname()
    nodes = sorted({w.node for w in workers if (w.host or w.node) == host})
    if not nodes:
        return Check("workers", False, f"no live worker on this machine ({host})")
    found = [(name, workers_check(roles, name, workers)) for name in nodes]
    detail = "; ".join(f"{name}: {check.detail}" for name, check in found)
    return Check("workers", all(check.passed for _, check in found), detail)


def _schema_check(engine: Engine) -> Check:
    try:
        current, head = current_revision(engine), head_revision()
    except Exception as exc:
        return Check("schema", False, describe_error(exc))
    if current != head:
        return Check("schema", False, f"at revision {current or 'none'}, this intaked needs {head}")
    return Check("schema", True, f"at head {head}")


def workers_check(roles: tuple[str, ...], node: str, workers: list[WorkerBeat]) -> Check:
    """Every expected role has a fresh heartbeat on ``node``, and no worker there is stale."""
    here = [w for w in workers if w.node == node]
    problems = [
        f"no live {role} worker" for role in roles if not any(w.role == role and w.fresh for w in here)
    ]
    problems += [
        f"{w.role} {w.id}: no heartbeat for {w.age_seconds:.0f}s (lease {w.lease_seconds:g}s)"
        for w in here
        if not w.fresh
    ]
    if problems:
        return Check("workers", False, "; ".join(problems))
    return Check("workers", True, ", ".join(f"{w.role} {w.age_seconds:.1f}s" for w in here))


def mailbox_check(name: str, poll: MailboxPoll | None) -> Check:
    """``imap.<mailbox>``: passed when its last pass succeeded."""
    if poll is None or poll.poll_age_seconds is None:
        detail = poll.last_error if poll is not None and poll.last_error else "not polled yet"
        return Check(name, False, detail)
    if poll.last_error:
        return Check(name, False, poll.last_error)
    return Check(name, True, f"last poll {poll.poll_age_seconds:.0f}s ago")


def _mailbox_checks(settings: Settings) -> list[str]:
    return [f"imap.{mailbox.name}" for mailbox in settings.imap if mailbox.enabled]
