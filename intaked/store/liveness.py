"""Which of intaked's processes are alive, and taking up the work of those that are not.

Every process that claims work (the back office, the outbox sender; the front too, to be seen)
is a row of the ``workers`` table, with a heartbeat written every ``daemon.heartbeat_seconds``.
Its claims carry its id (``claimed_by`` = ``<worker id>/<random>``). A worker is taken for dead,
and marked ``gone``, when

- it stopped cleanly (it marks itself);
- it ran on this node and its process no longer exists (a ``kill -9``, a crash): every live
  process of the node looks each heartbeat, so this is known within a second;
- its heartbeat is older than ``daemon.lease_seconds`` (another node died, or hangs). Only a
  process whose own heartbeats have been succeeding for a whole lease judges this, so that a
  database outage, which silences every heartbeat at once, never makes live workers look dead.

The claims of a gone worker return to their ready state on the next pass of any live process
that works on that table (see :class:`Recovery`), and the processes that work on it are woken.
So work held by a dead worker is taken up within a few seconds of its death, and a worker that
only lost its connection keeps its claims and finishes them itself (intaked/store/settle.py).
The claim timeouts (``intake.claim_timeout_seconds``, ``outbox.claim_timeout_seconds``) remain
only for a worker that is alive but hung.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from sqlalchemy import ColumnElement, Engine, Table, and_, bindparam, exists, func, or_, select, update

from intaked import __version__
from intaked.store.engine import read_only
from intaked.store.models import worker_table
from intaked.store.settle import describe_error
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

_workers = worker_table
FORGET_GONE_AFTER = dt.timedelta(days=1)  # a gone worker's row is kept this long, for operators
FORGET_EVERY_PASSES = 3600
_identity_lock = threading.Lock()
_node: str | None = None
_identity: tuple[int, str] | None = None  # (pid, worker id): a forked child gets its own


#: How the front tells its back office processes the node name it resolved.
NODE_NAME_ENV = "INTAKED_NODE_NAME"


def set_node_name(name: str) -> None:
    """This process's node name, set once at process start: ``daemon.node_name``, else the
    front's :func:`default_node_name` (its back office processes get it through
    :data:`NODE_NAME_ENV`)."""
    global _node, _identity
    with _identity_lock:
        _node = name or None
        _identity = None


def default_node_name() -> str:
    """A node's name when ``daemon.node_name`` is empty: the host name plus this (the front's)
    process id, so that two daemons on one machine are two nodes."""
    pid = str(os.getpid())
    return f"{socket.gethostname()[: 63 - len(pid)]}-{pid}"


def node_name() -> str:
    """This process's node name; a process that set none (a command, a test) is its host."""
    return _node or socket.gethostname()


def worker_id() -> str:
    """This process's worker id: node, process id and a random part (unique across restarts)."""
    global _identity
    pid = os.getpid()
    with _identity_lock:
        if _identity is None or _identity[0] != pid:
            _identity = (pid, f"{node_name()}:{pid}:{uuid.uuid4().hex[:8]}")
        return _identity[1]


def new_claim_token() -> str:
    return f"{worker_id()}/{uuid.uuid4().hex[:12]}"


def process_start_time(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (Linux), to tell a reused pid from
    the process that had it; None where it cannot be read (no such process, no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        return fields[19].decode("ascii")
    except (OSError, IndexError):
        return None


def process_exists(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    if started is None:
        return True
    current = process_start_time(pid)
    return current is None or current == started


def _claimed_by(table: Table) -> ColumnElement[bool]:
    """SQL: the worker row whose id starts ``table.claimed_by`` (no LIKE: ids may hold wildcards)."""
    return func.substr(table.c.claimed_by, 1, func.length(_workers.c.id) + 1) == _workers.c.id + "/"


def abandoned(
    table: Table, *, working: str, now: dt.datetime, lease_seconds: float, timeout_seconds: float
) -> ColumnElement[bool]:
    """SQL: rows of ``table`` in ``working`` whose claim is abandoned: their worker is gone; or no
    worker row knows the claim (issued by a tool, or before this table existed) and it is older
    than a lease; or it is older than ``timeout_seconds`` (a worker alive but hung)."""
    claimant = select(_workers.c.id).where(_claimed_by(table))
    return and_(
        table.c.state == working,
        or_(
            exists(claimant.where(_workers.c.state == "gone")),
            and_(~exists(claimant), table.c.claimed_at < now - dt.timedelta(seconds=lease_seconds)),
            table.c.claimed_at < now - dt.timedelta(seconds=timeout_seconds),
        ),
    )


def any_abandoned(engine: Engine, table: Table, condition: ColumnElement[bool]) -> bool:
    """A look without the write lock: usually there is nothing to recover."""
    with read_only(engine).connect() as conn:
        return conn.execute(select(table.c.id).where(condition).limit(1)).first() is not None


@dataclass(frozen=True, slots=True)
class Recovery:
    """Taking up one table's abandoned claims: ``recover(engine, now)`` returns how many rows it
    returned (intaked/intake/ledger.py, intaked/outbound/outbox.py); ``wake`` tells this process's
    workers of that table."""

    name: str
    recover: Callable[[Engine, dt.datetime], int]
    wake: Callable[[], None]


class LivenessKeeper:
    """This process's heartbeat and its share of recovery, on a thread of its own (so that a
    database thread pool busy with long sends never delays a heartbeat)."""

    def __init__(
        self,
        engine: Engine,
        *,
        role: str,
        heartbeat_seconds: float,
        lease_seconds: float,
        recoveries: Sequence[Recovery] = (),
        version: str | None = __version__,
    ) -> None:
        self._engine = engine
        self.role = role
        self.id = worker_id()
        self._heartbeat_seconds = heartbeat_seconds
        self._lease_seconds = lease_seconds
        self._recoveries = list(recoveries)
        self._version = version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected_since: float | None = None  # monotonic time of the first of our unbroken heartbeats
        self._failing_since: float | None = None
        self._failures = 0
        self._passes = 0
        self._registered = False
        self._log = log.bind(worker=self.id, role=role)

    def add_recovery(self, recovery: Recovery) -> None:
        self._recoveries.append(recovery)

    def start(self, *, required: bool = True) -> None:
        """Register, take up what dead workers left, then keep beating on a thread of our own.
        Blocking; when the store cannot be written, raises, or with ``required=False`` (the
        front, which must answer 451 rather than not listen) logs it and registers later."""
        try:
            self._beat(first=True)
        except Exception as exc:
            if required:
                raise
            self._failing_since = time.monotonic()
            self._failures = 1
            self._log.warning("heartbeat_failed", error=describe_error(exc))
        else:
            self._connected_since = time.monotonic()
            self._look_after_others()
        self._thread = threading.Thread(target=self._run, name=f"intaked-liveness-{self.role}", daemon=True)
        self._thread.start()

    def stop(self, reason: str = "stopped") -> None:
        """Stop beating and mark this worker gone (its remaining claims are taken up at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with contextlib.suppress(Exception):
            mark_gone(self._engine, {self.id: reason})

    def _run(self) -> None:
        while not self._stop.wait(self._heartbeat_seconds):
            self.pass_once()

    def pass_once(self) -> None:
        """One heartbeat and one look after the others; a failure only pauses the judging."""
        try:
            self._beat()
        except Exception as exc:
            self._connected_since = None
            self._failures += 1
            now = time.monotonic()
            if self._failing_since is None:
                self._failing_since = now
                self._log.warning("heartbeat_failed", error=describe_error(exc))
            elif self._failures % max(1, round(30 / self._heartbeat_seconds)) == 0:
                self._log.warning(
                    "heartbeat_still_failing",
                    failures=self._failures,
                    for_seconds=round(now - self._failing_since),
                )
            return
        if self._failing_since is not None:
            self._log.info("heartbeat_back", after_seconds=round(time.monotonic() - self._failing_since, 1))
            self._failing_since, self._failures = None, 0
        if self._connected_since is None:
            self._connected_since = time.monotonic()
        try:
            self._look_after_others()
        except Exception as exc:
            self._log.warning("recovery_pass_failed", error=describe_error(exc))

    def _beat(self, *, first: bool = False) -> None:
        """Write the heartbeat; the first (or one after our row was deleted) inserts the row."""
        now = utcnow()
        with self._engine.begin() as conn:
            updated = conn.execute(
                update(_workers)
                .where(_workers.c.id == self.id)
                .values(heartbeat_at=now, state="alive", gone_at=None, gone_reason=None)
            ).rowcount
            if updated:
                self._registered = True
                return
            pid = os.getpid()
            conn.execute(
                _workers.insert().values(
                    id=self.id,
                    node=node_name(),
                    host=socket.gethostname()[:255],
                    role=self.role,
                    pid=pid,
                    process_started=process_start_time(pid),
                    version=self._version,
                    state="alive",
                    started_at=now,
                    heartbeat_at=now,
                    lease_seconds=self._lease_seconds,
                )
            )
        if self._registered and not first:
            self._log.warning("worker_row_restored")
        self._registered = True

    def _look_after_others(self) -> None:
        now = utcnow()
        self._passes += 1
        if self._passes % FORGET_EVERY_PASSES == 1:
            forgotten = forget_gone(self._engine, FORGET_GONE_AFTER)
            if forgotten:
                self._log.info("gone_workers_forgotten", rows=forgotten)
        dead = self._dead_workers(now)
        if dead:
            for worker, reason in dead:
                self._log.warning("worker_gone", gone=worker, reason=reason)
            mark_gone(self._engine, dict(dead))
        for recovery in self._recoveries:
            count = recovery.recover(self._engine, now)
            if count:
                self._log.warning("claims_taken_up", table=recovery.name, rows=count)
                recovery.wake()

    def _dead_workers(self, now: dt.datetime) -> list[tuple[str, str]]:
        """Workers on this machine whose process is gone; and, once we have been connected for a
        whole lease, workers anywhere that have been silent for longer than a lease."""
        judge_silence = (
            self._connected_since is not None
            and time.monotonic() - self._connected_since >= self._lease_seconds
        )
        silent_since = now - dt.timedelta(seconds=self._lease_seconds)
        with read_only(self._engine).connect() as conn:
            rows = conn.execute(
                select(
                    _workers.c.id,
                    _workers.c.node,
                    _workers.c.host,
                    _workers.c.pid,
                    _workers.c.process_started,
                    _workers.c.heartbeat_at,
                ).where(_workers.c.state == "alive", _workers.c.id != self.id)
            ).all()
        dead: list[tuple[str, str]] = []
        host = socket.gethostname()
        for row in rows:
            on_this_machine = (row.host or row.node) == host  # rows of before 0014 have no host
            if on_this_machine and not process_exists(row.pid, row.process_started):
                dead.append((row.id, "its process exited"))
            elif judge_silence and row.heartbeat_at < silent_since:
                dead.append((row.id, f"no heartbeat for more than {self._lease_seconds:g}s"))
        return dead


_MARK_GONE = (
    update(_workers)
    .where(_workers.c.id == bindparam("worker"), _workers.c.state == "alive")
    .values(state="gone", gone_at=bindparam("at"), gone_reason=bindparam("reason"))
)


def mark_gone(engine: Engine, reasons: Mapping[str, str]) -> int:
    """Mark the given workers gone, each with its own reason; returns how many were still alive."""
    if not reasons:
        return 0
    now = utcnow()
    rows = [{"worker": worker, "at": now, "reason": reason[:2000]} for worker, reason in reasons.items()]
    with engine.begin() as conn:
        result = conn.execute(_MARK_GONE, rows)
    return int(result.rowcount)


def forget_gone(engine: Engine, older_than: dt.timedelta) -> int:
    """Delete the rows of workers gone for longer than ``older_than`` (they hold no claims)."""
    with engine.begin() as conn:
        result = conn.execute(
            _workers.delete().where(_workers.c.state == "gone", _workers.c.gone_at < utcnow() - older_than)
        )
    return int(result.rowcount)
