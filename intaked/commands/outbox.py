"""``intaked outbox list``: the newest rows of the outbox (queued side effects) and their state."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select

from intaked.commands.shared import iso, open_engine, print_json
from intaked.config import Settings
from intaked.store.migrate import current_revision
from intaked.store.models import outbox_table


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    outbox = sub.add_parser("outbox", help="queued side effects").add_subparsers(
        dest="outbox_command", required=True
    )
    outbox_list = outbox.add_parser("list", parents=[config_parent], help="the newest outbox rows")
    outbox_list.add_argument("--state", choices=["pending", "sending", "sent", "failed", "cancelled"])
    outbox_list.add_argument("--limit", type=int, default=50)
    outbox_list.add_argument("--json", action="store_true", help="JSON output")


def run(settings: Settings, args: argparse.Namespace) -> int:
    rows = _rows(settings, args.state, args.limit)
    if args.json:
        print_json(rows)
        return 0
    print(f"{'ID':>6} {'STATE':<9} {'PURPOSE':<13} {'TRIES':>5} {'RECIPIENT':<32} LAST ERROR")
    for row in rows:
        print(
            f"{row['id']:>6} {row['state']:<9} {row['purpose']:<13} {row['attempts']:>5} "
            f"{row['recipient']:<32} {row['last_error'] or ''}"
        )
    return 0


def _rows(settings: Settings, state: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` rows (in ``state`` if given), their payload left out."""
    engine = open_engine(settings)
    try:
        if current_revision(engine) is None:
            return []
        query = select(outbox_table).order_by(outbox_table.c.id.desc()).limit(limit)
        if state:
            query = query.where(outbox_table.c.state == state)
        with engine.connect() as conn:
            return [
                {k: iso(v) for k, v in row._mapping.items() if k != "payload"} for row in conn.execute(query)
            ]
    finally:
        engine.dispose()
