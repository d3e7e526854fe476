"""``intaked sweep``: close the resolved tickets whose auto-close time has come (or list them);
their requesters get the satisfaction survey (``[surveys]``)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from intaked.commands.lifecycle_errors import reporting_lifecycle_errors
from intaked.commands.shared import aware_instant, open_engine
from intaked.config import Settings
from intaked.sla.sweeper import sweep


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    sw = sub.add_parser("sweep", parents=[config_parent], help="close resolved tickets whose time has come")
    sw.add_argument("--now", type=aware_instant, help="as if it were this time (ISO 8601 with offset)")
    sw.add_argument("--dry-run", action="store_true", help="only list what would close")
    sw.add_argument("--json", action="store_true")


@reporting_lifecycle_errors
def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_engine(settings)
    try:
        closed = sweep(engine, args.now, dry_run=args.dry_run, settings=settings)
    finally:
        engine.dispose()
    if args.json:
        print(
            json.dumps([{"number": c.number, "auto_close_at": c.auto_close_at.isoformat()} for c in closed])
        )
        return 0
    verb = "would close" if args.dry_run else "closed"
    print(f"{verb} {len(closed)} ticket(s)")
    for ticket in closed:
        print(f"  {ticket.number}  (due {ticket.auto_close_at.isoformat()})")
    return 0
