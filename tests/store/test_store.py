"""The ticket store: migrations are the schema, numbers are unique under concurrency, times are UTC."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from intaked.cli import EXIT_UNAVAILABLE, main
from intaked.store.engine import make_engine, read_snapshot
from intaked.store.migrate import (
    MIGRATIONS_DIR,
    SchemaError,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)
from intaked.store.models import Base, Ticket, ticket_counter_table
from intaked.store.numbering import next_ticket_number, ticket_period
from tests.support.workers import free_port


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """The migrations' own tests start from an empty database."""
    return empty_db_url


def test_migrations_build_exactly_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    assert upgrade(engine) == (None, head_revision())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], "models.py and the migrations disagree: write a migration"
    assert current_revision(engine) == head_revision()
    assert upgrade(engine) == (head_revision(), head_revision()), "upgrading twice is harmless"
    engine.dispose()


def test_ticket_numbers_are_unique_and_gapless_under_concurrent_writers(db_url: str) -> None:
    engine = make_engine(db_url, busy_timeout_ms=10_000)
    upgrade(engine)
    when = dt.datetime(2026, 11, 30, 17, 0, tzinfo=dt.UTC)  # already December in Taipei
    numbers: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            with engine.begin() as conn:
                number = next_ticket_number(conn, "IT", when, "Asia/Taipei")
            with lock:
                numbers.append(number)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(numbers) == [f"IT-202612-{n:05d}" for n in range(1, 121)]
    engine.dispose()


def test_period_follows_the_configured_time_zone() -> None:
    when = dt.datetime(2026, 11, 30, 16, 30, tzinfo=dt.UTC)
    assert ticket_period("IT", when, "Asia/Taipei") == "IT-202612"
    assert ticket_period("IT", when, "America/Chicago") == "IT-202611"


def test_timestamps_are_stored_in_utc_and_read_back_aware(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    taipei = dt.timezone(dt.timedelta(hours=8))
    created = dt.datetime(2026, 11, 20, 9, 15, 30, 123456, tzinfo=taipei)
    tickets = Ticket.__table__
    with engine.begin() as conn:
        conn.execute(
            insert(tickets).values(
                number="IT-202611-00001",
                status="new",
                channel="email",
                subject="x",
                created_at=created,
                updated_at=created,
            )
        )
        row = conn.execute(select(tickets.c.created_at)).one()
        stored = conn.execute(text("SELECT CAST(created_at AS TEXT) FROM tickets")).scalar_one()
    assert row.created_at == created and row.created_at.utcoffset() == dt.timedelta(0)
    assert str(stored).startswith("2026-11-20 01:15:30.123456")
    with pytest.raises(Exception, match="naive datetime refused"), engine.begin() as conn:
        conn.execute(
            insert(tickets).values(
                number="IT-202611-00002",
                status="new",
                channel="email",
                subject="x",
                created_at=dt.datetime(2026, 1, 1),
                updated_at=created,
            )
        )
    engine.dispose()


def test_every_migration_downgrades_and_upgrades_again(db_url: str) -> None:
    """An operator can step back one release and forward again without losing the schema."""
    engine = make_engine(db_url)
    upgrade(engine)
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert upgrade(engine) == (None, head_revision())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    engine.dispose()


def test_check_constraints_refuse_unknown_status_and_priority(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    now = dt.datetime.now(dt.UTC)
    for values in (
        {"status": "deleted"},
        {"status": "new", "priority": "P5"},
        {"status": "new", "suggested_priority": "P0"},
    ):
        with pytest.raises(Exception, match=r"(?i)check"), engine.begin() as conn:
            conn.execute(
                insert(Ticket.__table__).values(
                    number="IT-1", channel="email", subject="", created_at=now, updated_at=now, **values
                )
            )
    engine.dispose()


def test_the_newest_revision_read_from_the_files_is_the_one_alembic_finds() -> None:
    """The daemon's start-up check reads the head from the revision files' text, without Alembic."""
    assert head_revision() == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def test_daemon_refuses_an_old_schema_when_not_allowed_to_migrate(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with pytest.raises(SchemaError, match=r"run `intaked db upgrade`"):
        ensure_schema(engine, auto_migrate=False)
    assert ensure_schema(engine, auto_migrate=True) == head_revision()
    engine.dispose()


def test_daemon_refuses_a_schema_from_a_newer_intaked(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="revision 9999, which this intaked does not know"):
        ensure_schema(engine, auto_migrate=True)
    engine.dispose()


def test_db_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "x.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    assert main(["db", "current", "--config", str(config)]) == 0
    assert f"(empty) (this intaked needs {head_revision()})" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert f"schema upgraded: (empty) -> {head_revision()}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert "schema already current" in capsys.readouterr().out


def test_unreachable_store_is_reported_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[database]\nurl = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n')
    assert main(["tickets", "list", "--config", str(config)]) == EXIT_UNAVAILABLE
    assert "the ticket store is unavailable" in capsys.readouterr().err


REPO = Path(__file__).resolve().parents[2]
OPEN_AND_MIGRATE = """
import sys, time
from intaked.store.engine import make_engine, read_snapshot
from intaked.store.migrate import ensure_schema
url, start_at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
print(ensure_schema(make_engine(url), auto_migrate=True))
"""
OPENING_TRIALS = 6  # before the fix about a quarter of such openings failed


def test_two_processes_opening_a_new_sqlite_database_at_once_both_start(tmp_path: Path) -> None:
    """Two intaked processes (or intaked and a command) creating the embedded database together:
    neither fails on "database is locked" while the other switches it to WAL."""
    for trial in range(OPENING_TRIALS):
        url = f"sqlite:///{tmp_path}/trial-{trial}.db"
        start_at = f"{time.time() + 1.5:.3f}"  # both have imported intaked by then
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AND_MIGRATE, url, start_at],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        results = [proc.communicate(timeout=60) for proc in procs]
        failures = [
            err.decode()[-600:] for proc, (_, err) in zip(procs, results, strict=True) if proc.returncode
        ]
        assert failures == [], f"trial {trial}"
        assert [out.decode().strip().splitlines()[-1] for out, _ in results] == [head_revision()] * 2


def test_a_snapshot_read_sees_one_state_of_the_store_across_its_statements(db_url: str) -> None:
    """Figures counted table by table (metrics, the STATUS line, the stall alarm) read one
    snapshot: a commit between two of their statements is not half seen."""
    engine = make_engine(db_url)
    upgrade(engine)
    counters = ticket_counter_table
    count = select(func.count()).select_from(counters)
    try:
        with read_snapshot(engine).connect() as reading:
            assert reading.execute(count).scalar_one() == 0
            with engine.begin() as writing:
                writing.execute(insert(counters).values(period="202612", last_value=1))
            assert reading.execute(count).scalar_one() == 0, "the second statement sees the first's state"
        with read_snapshot(engine).connect() as reading:
            assert reading.execute(count).scalar_one() == 1
    finally:
        engine.dispose()


def test_a_url_naming_several_hosts_uses_the_one_that_answers_and_says_which(pg_url: str) -> None:
    """libpq's host list: a host that refuses is skipped; the connection is the primary's, with
    intaked's timeouts, and the engine logs the server it reached."""
    parsed = make_url(pg_url)
    server = f"{parsed.host}:{parsed.port or 5432}"
    written = pg_url.replace(f"@{parsed.host}:{parsed.port}/", f"@127.0.0.1:{free_port()},{server}/")
    assert written != pg_url, "the test database's URL names one host and port"
    with capture_logs() as logs:
        engine = make_engine(written)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT current_setting('port')")).scalar_one() == str(
                    parsed.port or 5432
                )
                parameters = conn.connection.dbapi_connection.info.get_parameters()
        finally:
            engine.dispose()
    assert parameters["target_session_attrs"] == "read-write"
    assert (parameters["connect_timeout"], parameters["tcp_user_timeout"]) == ("4", "8000")
    assert [(e["server"], e["previous"]) for e in logs if e["event"] == "store_server"] == [
        (f"{parameters['host']}:{parsed.port or 5432}", None)
    ]
