"""``intaked sla deadlines|explain``: when a ticket of a priority would be due, and how a stored
ticket's deadlines were computed (its SLA snapshot, the stored times, warnings and breaches)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import Engine, select

from intaked.commands.lifecycle_errors import on_sla_context
from intaked.commands.shared import aware_instant, iso_in
from intaked.sla.context import SlaContext
from intaked.sla.deadlines import compute, for_new_ticket
from intaked.store.engine import read_only
from intaked.store.models import PRIORITIES, ticket_table
from intaked.store.types import UTCDateTime
from intaked.tickets.lifecycle import InvalidChange, TicketNotFound

# The ticket's times ``sla explain`` shows: its date and time columns but the tracker's bookkeeping
# (``updated_at``, ``sla_occurred_at``, ``sla_next_check_at``) and ``released_at``.
UNSHOWN_TIMES = frozenset({"updated_at", "sla_occurred_at", "sla_next_check_at", "released_at"})
STORED_TIMES = tuple(
    column.name
    for column in ticket_table.c
    if isinstance(column.type, UTCDateTime) and column.name not in UNSHOWN_TIMES
)


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    sla = sub.add_parser("sla", help="SLA deadlines").add_subparsers(dest="sla_command", required=True)
    deadlines = sla.add_parser("deadlines", parents=[config_parent], help="when is it due?")
    deadlines.add_argument("--priority", required=True, choices=PRIORITIES)
    deadlines.add_argument("--start", required=True, type=aware_instant)
    deadlines.add_argument("--calendar", default="")
    deadlines.add_argument("--json", action="store_true")
    explain = sla.add_parser(
        "explain", parents=[config_parent], help="how a ticket's deadlines were computed"
    )
    explain.add_argument("number")
    explain.add_argument("--json", action="store_true")


@on_sla_context
def run(engine: Engine, ctx: SlaContext, args: argparse.Namespace) -> int:
    if args.sla_command == "deadlines":
        return _deadlines(ctx, args)
    with read_only(engine).connect() as conn:
        row = (
            conn.execute(select(ticket_table).where(ticket_table.c.number == args.number)).mappings().first()
        )
    if row is None:
        raise TicketNotFound(args.number)
    return _explain(ctx, row, args.json)


def _deadlines(ctx: SlaContext, args: argparse.Namespace) -> int:
    name = args.calendar or ctx.settings.sla.calendar
    if name not in ctx.calendars:
        raise InvalidChange(f"no calendar named {name!r}")
    deadlines = for_new_ticket(ctx, args.priority, args.start, name)
    tz = ctx.calendars[name].tz
    if args.json:
        print(
            json.dumps(
                {
                    "response_due": iso_in(deadlines.response_due_at, tz),
                    "resolution_due": iso_in(deadlines.resolution_due_at, tz),
                }
            )
        )
    else:
        print(f"response due:   {iso_in(deadlines.response_due_at, tz)}")
        print(f"resolution due: {iso_in(deadlines.resolution_due_at, tz)}")
    return 0


def _explain(ctx: SlaContext, row: Any, as_json: bool) -> int:
    deadlines = compute(ctx, row)
    snapshot = json.loads(row["sla_snapshot"]) if row["sla_snapshot"] else {}
    tz = ctx.calendars[deadlines.calendar].tz
    stored = {key: iso_in(row[key], tz) for key in STORED_TIMES}
    if as_json:
        print(
            json.dumps(
                {
                    "number": row["number"],
                    "priority": row["priority"],
                    "status": row["status"],
                    "snapshot": snapshot,
                    "stored": stored,
                    "paused_seconds": row["sla_paused_seconds"],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    cal = ctx.calendars[deadlines.calendar]
    print(
        f"{row['number']}: status {row['status']}, priority {row['priority'] or 'not set (awaiting triage)'}"
    )
    print(f"calendar {deadlines.calendar!r}: {cal.tz}, a working day is {cal.standard_day}")
    for target in ("triage", "response", "resolution", "auto_close"):
        if snapshot.get(target):
            _explain_target(target, snapshot[target], stored)
    if row["sla_paused_at"] is not None:
        print(f"resolution clock paused since {stored['sla_paused_at']} (waiting on the requester)")
    return 0


def _explain_target(target: str, spec: dict[str, Any], stored: dict[str, str | None]) -> None:
    column = "auto_close_at" if target == "auto_close" else f"{target}_due_at"
    start_key = spec["from"]
    line = (
        f"{target:<11} {spec['target']} on the {spec['clock']} clock from {start_key} "
        f"{stored.get(start_key) or stored['created_at']}"
    )
    if target == "resolution" and spec.get("paused_seconds"):
        line += f", plus {spec['paused_seconds'] / 3600:.2f} h waiting on the requester"
    print(f"{line} -> due {stored[column]}")
    for what in ("warned", "breached"):
        key = f"{target}_{what}_at"
        if stored.get(key):
            print(f"{'':<12}{what} at {stored[key]}")
