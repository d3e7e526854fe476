"""Benchmark: the service-level report (``intaked report service-level``, issue 18) over a large
table, next to a plain ``SELECT group, count(*) ... GROUP BY group`` over the same rows in the same
run.

    nice .venv/bin/python bench/report_service_level.py [--tickets N] [--in-period N] [--db sqlite,postgresql]

The table: ``--tickets`` tickets (default 1,000,000), ``--in-period`` of them (default 100,000)
created in the reported week (Mon 2026-11-09 .. Sun 11-15, Asia/Taipei), the others over the two
years before it; 8 teams, 40 handlers, priorities P1-P4 and untriaged; about 1 % of the older
tickets still open (carried over), 20 % of the week's; commitments, extensions, escalations,
breaches and survey answers spread over them; 1 in 1,000 spam. The rows are made by the database
itself (a recursive CTE on SQLite, ``generate_series`` on PostgreSQL) from the same arithmetic, so
both hold the same tickets; then ``ANALYZE``. PostgreSQL gets its own database on the test server
(created, then dropped).

Each query runs ``--runs`` times (default 3) alternately; the best time of each is printed with
their ratio. Targets: the report under 5 s and within 5x the plain count.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import arguments  # noqa: E402
from intaked.config import settings_from_mapping  # noqa: E402
from intaked.reports.measures import baseline_query  # noqa: E402
from intaked.reports.service_level import build_report, period_bounds  # noqa: E402
from intaked.store.engine import make_engine  # noqa: E402
from intaked.store.migrate import upgrade  # noqa: E402
from tests.support.databases import pg_base_url, pg_unavailable_reason  # noqa: E402

WEEK = (dt.date(2026, 11, 9), dt.date(2026, 11, 15))
ZONE = "Asia/Taipei"
DAY = 86_400
BEFORE_SPAN = 730 * DAY  # the older tickets were created over the two years before the week
WEEK_SPAN = 7 * DAY

# Every ticket column from ``i`` (its number) and ``c`` (its creation, Unix seconds); ``⟨s⟩``
# is Unix seconds ``s`` as the dialect's timestamp; ``{open}`` is true for a ticket still open.
COLUMNS = {
    "number": "'BN-' || i",
    "status": "CASE WHEN i % 1000 = 999 THEN 'spam' WHEN {open} THEN 'open' "
    "WHEN i % 2 = 0 THEN 'closed' ELSE 'resolved' END",
    "channel": "'email'",
    "subject": "'bench'",
    "created_at": "⟨c⟩",
    "updated_at": "⟨c⟩",
    "team": "'team-' || (i % 8)",
    "priority": "CASE i % 10 WHEN 0 THEN NULL WHEN 1 THEN 'P1' WHEN 2 THEN 'P2' WHEN 3 THEN 'P2' "
    "WHEN 4 THEN 'P3' WHEN 5 THEN 'P3' WHEN 6 THEN 'P3' ELSE 'P4' END",
    "triage_due_at": "⟨c + 900⟩",
    "triaged_at": "CASE WHEN i % 10 <> 0 THEN ⟨c + (i % 20) * 60⟩ END",
    "triage_breached_at": "CASE WHEN i % 20 > 15 THEN ⟨c + 900⟩ END",
    "response_due_at": "CASE WHEN i % 10 <> 0 THEN ⟨c + 3600⟩ END",
    "first_response_at": "CASE WHEN i % 10 <> 0 THEN ⟨c + ((i * 7) % 90) * 60⟩ END",
    "first_response_by": "CASE WHEN i % 10 <> 0 THEN 'agent-' || ((i * 31) % 40) END",
    "resolution_due_at": "CASE WHEN i % 10 <> 0 THEN ⟨c + 3 * 86400⟩ END",
    "standard_due_at": "CASE WHEN i % 10 <> 0 THEN ⟨c + 3 * 86400⟩ END",
    "first_commitment_at": "CASE WHEN i % 10 <> 0 THEN ⟨c + 3 * 86400⟩ END",
    "commitment_at": "CASE WHEN i % 10 = 0 THEN NULL WHEN i % 7 = 0 THEN ⟨c + 5 * 86400⟩ "
    "ELSE ⟨c + 3 * 86400⟩ END",
    "extension_count": "CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END",
    "escalation_count": "CASE WHEN i % 11 = 0 THEN 1 WHEN i % 37 = 0 THEN 2 WHEN i % 101 = 0 THEN 3 "
    "ELSE 0 END",
    "resolution_breached_at": "CASE WHEN i % 10 <> 0 AND ({open} OR (i * 613) % 7200 > 4320) "
    "THEN ⟨c + 3 * 86400⟩ END",
    "resolved_at": "CASE WHEN NOT {open} THEN ⟨c + 60 + ((i * 613) % 7200) * 60⟩ END",
    "closed_at": "CASE WHEN NOT {open} AND i % 2 = 0 THEN ⟨c + 3 * 86400 + ((i * 613) % 7200) * 60⟩ END",
    "satisfaction_score": "CASE WHEN NOT {open} AND i % 4 = 0 THEN 1 + (i / 4) % 5 END",
    "satisfaction_at": "CASE WHEN NOT {open} AND i % 4 = 0 THEN ⟨c + 3600 + ((i * 613) % 7200) * 60⟩ END",
}


def ticket_insert(source: str, tickets: int, in_period: int, start: int) -> str:
    """``INSERT INTO tickets ... SELECT`` from ``source`` (rows ``i`` = 1..tickets): the last
    ``in_period`` created in the week, the others before it."""
    older = tickets - in_period
    created = (
        f"CASE WHEN i > {older} THEN {start} + (i * 104729) % {WEEK_SPAN} "
        f"ELSE {start} - 60 - (i * 7919) % {BEFORE_SPAN} END"
    )
    still_open = f"((i > {older} AND i % 5 = 0) OR (i <= {older} AND i % 100 = 0))"
    names = ", ".join(COLUMNS)
    values = ", ".join(expr.format(open=still_open) for expr in COLUMNS.values())
    return f"INSERT INTO tickets ({names}) SELECT {values} FROM (SELECT i, {created} AS c FROM {source}) AS s"


def call_insert(source: str, tickets: int, in_period: int, start: int) -> str:
    """One hotline call per 20 of the week's tickets, a third each answered, voicemail, missed."""
    older = tickets - in_period
    return (
        "INSERT INTO calls (call_sid, ticket_id, from_number, to_number, outcome, started_at, "
        "answered_at, source, created_at, updated_at) "
        f"SELECT 'CA' || i, i, '+886900000000', '+886225551234', "
        "CASE i % 3 WHEN 0 THEN 'answered_by_desk' WHEN 1 THEN 'voicemail' ELSE 'missed' END, "
        f"⟨c⟩, CASE WHEN i % 3 = 0 THEN ⟨c + i % 30⟩ END, 'webhook', ⟨c⟩, ⟨c⟩ "
        f"FROM (SELECT i, {start} + (i * 104729) % {WEEK_SPAN} AS c FROM {source}) AS s "
        f"WHERE i > {older} AND i % 20 = 0"
    )


TIMES = {  # ⟨seconds⟩ → a timestamp, as intaked stores it
    "sqlite": ("(strftime('%Y-%m-%d %H:%M:%S', ", ", 'unixepoch') || '.000000')"),
    "postgresql": ("to_timestamp(", ")"),
}


def fill(engine: Engine, tickets: int, in_period: int) -> float:
    """Make the tickets and calls in the database itself; returns the seconds it took."""
    start = int(period_bounds(*WEEK, ZONE).start.timestamp())
    dialect = engine.dialect.name
    if dialect == "sqlite":
        series = (
            "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            f"WHERE i < {tickets}) SELECT i FROM n)"
        )
    else:
        series = f"generate_series(1::bigint, {tickets}) AS i"
    opening, closing = TIMES[dialect]
    began = time.perf_counter()
    with engine.begin() as conn:
        for statement in (ticket_insert, call_insert):
            sql = statement(series, tickets, in_period, start)
            if dialect == "postgresql":
                sql = sql.replace("%", "%%")  # psycopg's placeholders
            conn.exec_driver_sql(sql.replace("⟨", opening).replace("⟩", closing))
    with engine.begin() as conn:  # the planner's statistics (a transaction block is fine for both)
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - began


def best_of(runs: int, *calls: Callable[[], object]) -> list[float]:
    """Run the calls alternately ``runs`` times; the best seconds of each."""
    best = [float("inf")] * len(calls)
    for _ in range(runs):
        for n, call in enumerate(calls):
            began = time.perf_counter()
            call()
            best[n] = min(best[n], time.perf_counter() - began)
    return best


@contextmanager
def own_database(db: str, tmp: str) -> Iterator[str | None]:
    """A fresh SQLite file, or a new PostgreSQL database on the test server (dropped after);
    None (with a printed reason) when PostgreSQL is unreachable."""
    if db == "sqlite":
        yield f"sqlite:///{Path(tmp) / 'report.db'}"
        return
    if reason := pg_unavailable_reason():
        print(f"postgresql: skipped: {reason}")
        yield None
        return
    name = f"intaked_bench_report_{os.getpid()}"
    admin = create_engine(pg_base_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield make_url(pg_base_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def bench(
    url: str, tickets: int, in_period: int, runs: int, by: str
) -> tuple[float, float, float, dict[str, Any]]:
    """(fill seconds, plain count seconds, report seconds, the report)."""
    engine = make_engine(url)
    upgrade(engine)
    filled = fill(engine, tickets, in_period)
    settings = settings_from_mapping({"database": {"url": url}, "logging": {"level": "warning"}}, environ={})
    plain = baseline_query(by, period_bounds(*WEEK, ZONE))

    def count() -> object:
        with engine.connect() as conn:
            return conn.execute(plain).all()

    def report() -> object:
        return build_report(engine, settings, *WEEK, by=by)

    baseline, elapsed = best_of(runs, count, report)
    document = build_report(engine, settings, *WEEK, by=by)
    engine.dispose()
    return filled, baseline, elapsed, document


def main() -> None:
    parser = arguments(__doc__, 0)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--in-period", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--by", default="team", choices=["team", "handler", "priority"])
    args = parser.parse_args()
    print(
        f"{args.tickets:,} tickets, {args.in_period:,} in the week {WEEK[0]} .. {WEEK[1]} ({ZONE}),",
        f"by {args.by}",
    )
    print(f"{'database':<11} {'fill s':>7} {'count s':>8} {'report s':>9} {'ratio':>6} {'handled':>8}")
    documents: list[dict[str, Any]] = []
    for db in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp, own_database(db, tmp) as url:
            if url is None:
                continue
            filled, baseline, elapsed, document = bench(url, args.tickets, args.in_period, args.runs, args.by)
            documents.append(document)
            ratio, handled = elapsed / baseline, document["total"]["handled"]
            print(f"{db:<11} {filled:>7.1f} {baseline:>8.3f} {elapsed:>9.3f} {ratio:>6.2f} {handled:>8,}")

    if len(documents) > 1:  # the same tickets: the same report on every database
        print("same report on each database:", "yes" if all(d == documents[0] for d in documents) else "NO")


if __name__ == "__main__":
    main()
