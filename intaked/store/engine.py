"""Connecting to the ticket store: SQLite (embedded default) or PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed message survives a power cut, which
is what our SMTP 250 promises), a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for
writing transactions so two writers queue on the busy timeout instead of failing on upgrade.
Read-only work uses :func:`read_only` connections that begin with a plain deferred ``BEGIN``.
The outbox sender's engine alone uses ``synchronous=NORMAL``: marking a mail sent then survives a
crash of any process (WAL), and a power cut can at worst forget the last marks, so those mails go
out once more: repeated, never lost, since the send came before the mark.

PostgreSQL connections are tested before each use and give up on a dead server within seconds
(:data:`PG_CONNECT_DEFAULTS`); a URL may name several hosts, and then a connection goes to
whichever is the primary (``target_session_attrs=read-write``), so after a failover the pool
finds the new one by itself.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from intaked.config import Settings, connectable_url, effective_database_url, host_count
from intaked.store.files import prepare_database_files

READ_ONLY_OPTION = "intaked_read_only"
#: SQLAlchemy inserts a batch of N rows with one statement of N value groups: a statement of its
#: own for each batch size, which SQLite prepares and Python's sqlite3 caches per connection (a
#: statement for 100 rows is hundreds of KB inside SQLite). Over tens of thousands of messages
#: the caches of the pooled connections went on filling with them. Rows per statement: a batch
#: of 100 is four statements of the same text, and the others stay few and small.
SQLITE_ROWS_PER_INSERT = 25
#: Prepared statements Python's sqlite3 keeps per connection (its default: 128).
SQLITE_CACHED_STATEMENTS = 32
WAL_SWITCH_RETRY_SECONDS = 0.02
#: libpq settings for PostgreSQL connections, each unless the URL sets it. A connection attempt
#: gives up on a host after 4 s and tries the next one the URL names; an open connection whose
#: server vanished without closing it (its machine died) fails once data it sent has gone
#: unacknowledged for 8 s, or after 10 s of silence and 3 unanswered keepalives 3 s apart.
PG_CONNECT_DEFAULTS: dict[str, int] = {
    "connect_timeout": 4,
    "tcp_user_timeout": 8000,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}

log = structlog.get_logger(__name__)


def make_engine(
    url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 5, sqlite_synchronous: str = "FULL"
) -> Engine:
    """Create the engine for ``url`` with intaked's connection settings (libpq's several hosts
    accepted: intaked/config/dburl.py)."""
    parsed = connectable_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout_ms, sqlite_synchronous)
    return _postgresql_engine(parsed, pool_size)


def _postgresql_engine(url: URL, pool_size: int) -> Engine:
    """Connections that notice a dead server within seconds, so that after a failover the pool
    reconnects to the new primary (see docs/operations.md, "PostgreSQL: replication and
    failover"): each connection is tested before use (``pool_pre_ping``; a disconnect empties
    the whole pool), and what the URL does not set itself comes from :data:`PG_CONNECT_DEFAULTS`."""
    connect_args: dict[str, Any] = {k: v for k, v in PG_CONNECT_DEFAULTS.items() if k not in url.query}
    if "application_name" not in url.query:  # a URL may name its node's connections
        connect_args["application_name"] = "intaked"
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args,
    )
    if host_count(url) > 1:
        event.listen(engine, "connect", _ServerWatch())
    return engine


class _ServerWatch:
    """On each new connection of an engine whose URL names several hosts: logs ``store_server``
    with the server it reached, when that is the first or a different one than before (after a
    failover, each process says once where it now writes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: str | None = None

    def __call__(self, dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        info = dbapi_connection.info
        server = f"{info.host}:{info.port}"
        with self._lock:
            previous, self._server = self._server, server
        if server != previous:
            log.info("store_server", server=server, previous=previous)


def _sqlite_engine(url: str, busy_timeout_ms: int, synchronous: str = "FULL") -> Engine:
    parsed = make_url(url)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        prepare_database_files(Path(database).expanduser())
    engine = create_engine(
        url,
        pool_use_lifo=True,  # the connection used last (warm caches) first; the others stay cold
        insertmanyvalues_page_size=SQLITE_ROWS_PER_INSERT,
        connect_args={
            "timeout": busy_timeout_ms / 1000,
            "check_same_thread": False,
            "cached_statements": SQLITE_CACHED_STATEMENTS,
            "factory": _writer_queue_connection(threading.Lock(), _lock_file(database)),
        },
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let us emit BEGIN ourselves (see _on_begin), and set the pragmas once per connection.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _use_wal(cursor, busy_timeout_ms / 1000)
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            dbapi = conn.connection.dbapi_connection
            assert isinstance(dbapi, _WriterQueueConnection)
            dbapi.enter_writer_queue()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                dbapi.leave_writer_queue()
                raise

    return engine


def _use_wal(cursor: sqlite3.Cursor, timeout_seconds: float) -> None:
    """Put the database in WAL mode, waiting up to ``timeout_seconds`` for another process doing
    the same: switching a new database's journal mode answers "database is locked" at once,
    without the busy handler, while another connection is switching it (two intaked processes, or
    intaked and a command, opening a new database together)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(WAL_SWITCH_RETRY_SECONDS)


class _WriterQueueConnection(sqlite3.Connection):
    """A SQLite connection whose writing transactions queue on a lock shared by the engine.

    SQLite lets one writer in at a time; the others wait in its busy handler, which polls with
    sleeps of up to 100 ms. Threads of one process queue on a lock instead, so the next writer
    starts the moment the previous one has committed (other processes still meet the busy
    timeout). The lock is held from ``BEGIN IMMEDIATE`` until the commit or rollback returns.
    """

    writer_lock: threading.Lock
    writer_file: int | None

    _holding = False

    def enter_writer_queue(self) -> None:
        self.writer_lock.acquire()
        if self.writer_file is not None:
            try:
                fcntl.flock(self.writer_file, fcntl.LOCK_EX)
            except BaseException:
                self.writer_lock.release()
                raise
        self._holding = True

    def leave_writer_queue(self) -> None:
        if self._holding:
            self._holding = False
            if self.writer_file is not None:
                fcntl.flock(self.writer_file, fcntl.LOCK_UN)
            self.writer_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave_writer_queue()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_writer_queue()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_writer_queue()


def _writer_queue_connection(lock: threading.Lock, lock_file: int | None) -> type[_WriterQueueConnection]:
    return type(
        "WriterQueueConnection", (_WriterQueueConnection,), {"writer_lock": lock, "writer_file": lock_file}
    )


def _lock_file(database: str | None) -> int | None:
    """The file intaked processes lock (flock) to queue their writers, next to the database."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    try:
        return os.open(f"{Path(database).expanduser()}-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None


def engine_for(
    settings: Settings, *, pool_size: int | None = None, sqlite_synchronous: str = "FULL"
) -> Engine:
    """The engine the configuration names (``database.*``); ``pool_size`` overrides the setting."""
    db = settings.database
    return make_engine(
        effective_database_url(settings),
        busy_timeout_ms=db.sqlite_busy_timeout_ms,
        pool_size=db.pool_size if pool_size is None else pool_size,
        sqlite_synchronous=sqlite_synchronous,
    )


def read_only(engine: Engine) -> Engine:
    """The same engine (same pool), for transactions that only read."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def close_instead_of_pooling(conn: Connection) -> None:
    """After statements that bound large values (a message, an attachment): on SQLite, close the
    database connection when ``conn`` closes instead of returning it to the pool.

    Python's sqlite3 keeps each connection's prepared statements in a cache together with the
    values last bound to them, and SQLite holds its own copy of every bound blob and text until
    that statement runs again: after a 25 MB message the copy would stay in memory for as long as
    the connection lives. Closing frees it; a new connection opens in well under a millisecond.
    PostgreSQL keeps nothing of the kind.
    """
    if conn.dialect.name == "sqlite":
        conn.detach()


def read_snapshot(engine: Engine) -> Engine:
    """For reads whose several statements must agree (figures counted table by table): one
    snapshot for the whole transaction. SQLite's read transaction is one already; PostgreSQL's
    default, READ COMMITTED, gives each statement its own (a ticket could be counted while the
    item it was filed from still counted as waiting), so these ask for REPEATABLE READ."""
    reading = read_only(engine)
    if engine.dialect.name == "postgresql":
        return reading.execution_options(isolation_level="REPEATABLE READ")
    return reading
