"""Benchmark: working time in the store: recomputing open tickets after a calendar override, and
the auto-close sweeper on a large table, each next to a bare statement in the same run.

    .venv/bin/python bench/sla_store.py [--open N] [--tickets N] [--due N] [--db sqlite,postgresql]

- recompute: ``--open`` open tickets (mixed priorities, created over the last 20 working days);
  ``intaked calendar add-holiday`` (lifecycle.set_override: store the override, recompute every
  open ticket of the calendar, write the changed deadlines and a ``deadlines_set`` event each).
  Baseline: reading the same rows and writing one column back, unchanged, in the same batches.
- sweep: ``--tickets`` tickets of which ``--due`` are resolved and past ``auto_close_at``; one
  sweeper pass (close them, one ``auto_closed`` event each), timed at two table sizes to show that
  the cost follows the number due, not the table. Baseline: the bare UPDATE of the same rows.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, bindparam, select, text, update

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import arguments, fresh_database  # noqa: E402
from intaked.config import settings_from_mapping  # noqa: E402
from intaked.sla.sweeper import sweep  # noqa: E402
from intaked.store.engine import make_engine  # noqa: E402
from intaked.store.migrate import upgrade  # noqa: E402
from intaked.store.models import ticket_table  # noqa: E402
from intaked.tickets.lifecycle import set_override  # noqa: E402

NOW = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # Tue 10:00 in Taipei


def fill(engine: Engine, count: int, status_of: object, first_id: int = 1) -> None:
    """Insert ``count`` tickets; ``status_of(i)`` gives (status, priority, resolved_at, auto_close_at)."""
    rng = random.Random(first_id)
    rows = []
    for i in range(first_id, first_id + count):
        status, priority, resolved, auto_close = status_of(i)  # type: ignore[operator]
        created = NOW - dt.timedelta(minutes=rng.randrange(1, 20 * 24 * 60))
        rows.append(
            {
                "number": f"BN-{i:09d}",
                "status": status,
                "priority": priority,
                "channel": "email",
                "subject": f"bench {i}",
                "created_at": created,
                "updated_at": created,
                "sla_status": status,
                "sla_priority": priority,
                "resolved_at": resolved,
                "auto_close_at": auto_close,
                "sla_paused_seconds": 0.0,
            }
        )
        if len(rows) == 20000:
            with engine.begin() as conn:
                conn.execute(ticket_table.insert(), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(ticket_table.insert(), rows)


def bench_recompute(url: str, count: int) -> tuple[float, float, int]:
    engine = make_engine(url)
    upgrade(engine)
    priorities = ["P1", "P2", "P3", "P4", None]
    fill(engine, count, lambda i: ("open" if i % 3 else "new", priorities[i % 5], None, None))
    settings = settings_from_mapping({"database": {"url": url}}, environ={})
    # the tickets get their first deadlines (as the daemon would have given them), not timed
    set_override(engine, settings, "default", dt.date(2030, 1, 2), "holiday", "warm-up")
    start = time.perf_counter()
    with engine.connect() as conn:  # baseline: read every open ticket, write a column back unchanged
        last = 0
        while True:
            with conn.begin():
                rows = conn.execute(
                    select(ticket_table.c.id, ticket_table.c.resolution_due_at)
                    .where(
                        ticket_table.c.status.in_(["new", "open", "pending", "resolved"]),
                        ticket_table.c.id > last,
                    )
                    .order_by(ticket_table.c.id)
                    .limit(5000)
                ).all()
                if not rows:
                    break
                last = rows[-1].id
                conn.execute(
                    update(ticket_table)
                    .where(ticket_table.c.id == bindparam("b_id"))
                    .values(resolution_due_at=bindparam("b_due")),
                    [{"b_id": r.id, "b_due": r.resolution_due_at} for r in rows],
                )
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    # a typhoon day announced for tomorrow: every deadline after it moves
    changed = set_override(engine, settings, "default", dt.date(2026, 12, 2), "holiday", "颱風假")
    elapsed = time.perf_counter() - start
    engine.dispose()
    return baseline, elapsed, changed


def bench_sweep(url: str, total: int, due: int) -> list[tuple[int, float, float, int]]:
    engine = make_engine(url)
    upgrade(engine)
    past = NOW - dt.timedelta(days=10)

    def closed(i: int) -> tuple[str, str, dt.datetime, None]:
        return ("closed", "P3", past, None)

    out = []
    made = 0
    for size in (total // 10, total):
        fill(engine, size - made - due, closed, first_id=made + 1)
        fill(
            engine,
            due,
            lambda i: ("resolved", "P3", past, NOW - dt.timedelta(minutes=i % 600 + 1)),
            first_id=size - due + 1,
        )
        made = size
        start = time.perf_counter()
        with engine.begin() as conn:  # baseline: the bare UPDATE, no events, no RETURNING
            conn.execute(
                update(ticket_table)
                .where(ticket_table.c.status == "resolved", ticket_table.c.auto_close_at <= NOW)
                .values(status="closed", closed_at=NOW)
            )
        baseline = time.perf_counter() - start
        with engine.begin() as conn:  # the same tickets due again
            conn.execute(
                update(ticket_table)
                .where(ticket_table.c.closed_at == NOW)
                .values(status="resolved", closed_at=None)
            )
        start = time.perf_counter()
        swept = sweep(engine, NOW)
        out.append((size, baseline, time.perf_counter() - start, len(swept)))
        with engine.begin() as conn:  # keep them closed-by-hand for the next size
            conn.execute(text("UPDATE tickets SET auto_close_at = NULL WHERE status = 'closed'"))
    engine.dispose()
    return out


def main() -> None:
    parser = arguments(__doc__, 0)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{'database':<11} {'what':<34} {'baseline s':>10} {'intaked s':>9} {'rows':>8}")
    for db in args.db.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            with fresh_database(db, tmp, "recompute") as url:
                if url is None:
                    continue
                baseline, elapsed, changed = bench_recompute(url, args.open)
                what = f"recompute {args.open:,} open tickets"
                print(f"{db:<11} {what:<34} {baseline:>10.2f} {elapsed:>9.2f} {changed:>8}")
            with fresh_database(db, tmp, "sweep") as url:
                assert url is not None
                for size, baseline, elapsed, closed in bench_sweep(url, args.tickets, args.due):
                    what = f"sweep {args.due:,} due of {size:,}"
                    print(f"{db:<11} {what:<34} {baseline:>10.2f} {elapsed:>9.2f} {closed:>8}")


if __name__ == "__main__":
    main()
