"""``intaked ticket triage|take|resolve|release``: act on one ticket; prints its new deadlines.

The actions themselves are the ticket lifecycle's (:mod:`intaked.tickets.lifecycle`)."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import Engine

from intaked.commands.lifecycle_errors import on_sla_context
from intaked.commands.shared import iso_in
from intaked.sla.context import SlaContext
from intaked.store.models import PRIORITIES
from intaked.tickets.lifecycle import release, resolve, take, triage


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    ticket = sub.add_parser("ticket", help="act on a ticket").add_subparsers(
        dest="ticket_command", required=True
    )
    tri = ticket.add_parser("triage", parents=[config_parent], help="set the priority (and team)")
    tri.add_argument("number")
    tri.add_argument("--priority", required=True, choices=PRIORITIES)
    tri.add_argument("--team")
    tri.add_argument("--by", default="operator")
    tk = ticket.add_parser("take", parents=[config_parent], help="IT staff takes it (first response)")
    tk.add_argument("number")
    tk.add_argument("--by", required=True)
    res = ticket.add_parser("resolve", parents=[config_parent], help="resolve, and tell the requester")
    res.add_argument("number")
    res.add_argument("--note", default="")
    res.add_argument("--by", default="operator")
    rel = ticket.add_parser(
        "release",
        parents=[config_parent],
        help="release from the spam quarantine: a new ticket, acknowledged",
    )
    rel.add_argument("number")
    rel.add_argument("--by", default="operator")


@on_sla_context
def run(engine: Engine, ctx: SlaContext, args: argparse.Namespace) -> int:
    if args.ticket_command == "triage":
        changed = triage(engine, ctx, args.number, priority=args.priority, team=args.team, by=args.by)
    elif args.ticket_command == "take":
        changed = take(engine, ctx, args.number, by=args.by)
    elif args.ticket_command == "release":
        changed = release(engine, ctx, args.number, by=args.by)
    else:
        changed = resolve(engine, ctx, args.number, note=args.note, by=args.by)
    tz = ctx.calendars[changed.deadlines.calendar].tz
    d = changed.deadlines
    print(f"{changed.number}: {args.ticket_command} done")
    for label, value in (
        ("triage due", d.triage_due_at if args.ticket_command == "release" else None),
        ("response due", d.response_due_at),
        ("resolution due", d.resolution_due_at),
        ("closes by itself", d.auto_close_at),
    ):
        if value is not None:
            print(f"  {label}: {iso_in(value, tz)}")
    return 0
