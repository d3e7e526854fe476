"""Fixtures shared by the whole suite: the databases every store test runs against, and the SMTP
sink that stands for the mail relay."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.databases import (
    pg_database,
    pg_migrated_database,
    pg_unavailable_reason,
    sqlite_migrated_copy,
)
from tests.support.smtpsink import SmtpSink

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

# Running on several pytest-xdist workers: fixed-port groups, tests that run alone.
pytest_plugins = ["tests.support.parallel"]


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that runs ``intaked.cli.main`` in this process configures logging for the run
    (a level filter, the root handler): put it back, so that a later test's ``capture_logs``
    sees every line whichever tests ran before it on the same worker."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the schema's head (a copy of a template migrated once per test
    process, tests/support/databases.py): SQLite always, PostgreSQL when the server is
    reachable. ``upgrade()`` on it, or a daemon starting on it, finds nothing to do."""
    if request.param == "sqlite":
        yield sqlite_migrated_copy(tmp_path / "intaked.db")
        return
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg_migrated_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database (no schema at all): for the tests of the migrations themselves."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'intaked.db'}"
        return
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'intaked.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = pg_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with pg_database() as url:
        yield url


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A running SMTP sink (aiosmtpd on a free loopback port): the relay outbound mail goes to."""
    server = SmtpSink().start()
    yield server
    server.stop()
