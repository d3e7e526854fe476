"""Test databases: a fresh SQLite file, or a fresh schema on the real PostgreSQL server.

PostgreSQL is reached at ``$INTAKED_TEST_PG_URL`` (default: this machine's server at
127.0.0.1:5432, trust auth, database ``test``). Each test gets its own schema (via the
connection's ``search_path``), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from urllib.parse import quote

from sqlalchemy import create_engine, text
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


def pg_url_for_schema(schema: str, base: str | None = None) -> str:
    base = base or pg_base_url()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema; yields the URL that uses it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_base_url())
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield pg_url_for_schema(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
