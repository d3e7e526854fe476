"""Test databases: a fresh SQLite file, or a fresh database on the real PostgreSQL server.

PostgreSQL is reached at ``$INTAKED_TEST_PG_URL`` (default: this machine's server at
127.0.0.1:5432, trust auth, database ``test``, which only serves to create and drop the
others). Each test gets a database of its own (:func:`pg_database`), dropped afterwards. A store
already at the schema's head (:func:`pg_migrated_database`, :func:`sqlite_migrated_copy`) is a copy of a
template this process migrated once: running the migrations costs about a second per test on
PostgreSQL (150 DDL statements), ``CREATE DATABASE ... TEMPLATE`` a few hundredths.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_base_url() -> str:
    return os.environ.get("INTAKED_TEST_PG_URL", DEFAULT_PG_URL)


@cache
def pg_unavailable_reason() -> str | None:
    """None when PostgreSQL answers, else why the PostgreSQL tests are skipped."""
    engine = create_engine(pg_base_url(), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        return f"PostgreSQL at {pg_base_url()} is not reachable ({exc.orig}); set INTAKED_TEST_PG_URL"
    finally:
        engine.dispose()
    return None


def pg_database_url(name: str) -> str:
    """The URL of database ``name`` on the test server; it always has a query string (tests add
    ``&application_name=...`` to name their connections)."""
    url = make_url(pg_base_url()).set(database=name)
    if not url.query:
        url = url.update_query_dict({"sslmode": "prefer"})  # libpq's default: changes nothing
    return url.render_as_string(hide_password=False)


@cache
def _pg_admin() -> Engine:
    """One autocommit connection pool for CREATE/DROP DATABASE (they refuse a transaction)."""
    return create_engine(pg_base_url(), isolation_level="AUTOCOMMIT", pool_size=1)


def _drop_pg_database(name: str) -> None:
    with _pg_admin().connect() as conn:  # FORCE: a daemon a test left behind may still hold a connection
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@cache
def _pg_template() -> str:
    """A database at the schema's head, migrated once by this process, dropped when it exits."""
    from intaked.store.engine import make_engine
    from intaked.store.migrate import upgrade

    name = f"intaked_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with _pg_admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    atexit.register(_drop_pg_database, name)
    engine = make_engine(pg_database_url(name))
    try:
        upgrade(engine)
    finally:
        engine.dispose()  # no connection may stay: a template is copied only when nobody is in it
    return name


@contextmanager
def pg_database(template: str = "template0") -> Iterator[str]:
    """A fresh database, a copy of ``template`` (empty by default), dropped afterwards; yields its
    URL. A database per test, not a schema: dropping a database leaves nothing behind in the
    server's catalogs, where thousands of dropped schemas would (the server may run without
    autovacuum)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with _pg_admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield pg_database_url(name)
    finally:
        _drop_pg_database(name)


def pg_migrated_database() -> AbstractContextManager[str]:
    """A fresh database at the schema's head (a copy of this process's template)."""
    return pg_database(_pg_template())


@cache
def _sqlite_template() -> Path:
    """A SQLite store at the schema's head, migrated once by this process."""
    from intaked.store.engine import make_engine
    from intaked.store.migrate import upgrade

    directory = Path(tempfile.mkdtemp(prefix="intaked-template-"))
    atexit.register(shutil.rmtree, directory, True)
    path = directory / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return path


def sqlite_migrated_copy(path: Path) -> str:
    """A SQLite store at the schema's head at ``path`` (the template copied page by page with
    SQLite's backup, whatever its write-ahead log holds); its URL."""
    with closing(sqlite3.connect(_sqlite_template())) as source, closing(sqlite3.connect(path)) as copy:
        source.backup(copy)
    path.chmod(0o640)  # as intaked creates its store (it tightens, and says so, any looser file)
    return f"sqlite:///{path}"
