"""``intaked ticket triage|take|resolve|release|commit|extend|escalate|show``: act on one ticket;
prints its new deadlines or commitments.

The actions themselves are the ticket lifecycle's (:mod:`intaked.tickets.lifecycle`) and the
commitments' (:mod:`intaked.tickets.commitments`). A time without a UTC offset is read in
``tickets.timezone``; commitments are shown in it."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from sqlalchemy import Engine, select

from intaked.commands.lifecycle_errors import on_sla_context
from intaked.commands.shared import iso_in
from intaked.sla.context import SlaContext
from intaked.store.models import PRIORITIES, ticket_table
from intaked.tickets.commitments import CommitmentChanged, commit, escalate, extend, local_zone, shown
from intaked.tickets.lifecycle import TicketNotFound, release, resolve, take, triage

COMMITMENT_COMMANDS = ("commit", "extend", "escalate")


def instant(text: str) -> dt.datetime:
    """An argument type: an ISO 8601 date and time; without a UTC offset it is local time
    (``tickets.timezone``, applied once the settings are read)."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 date and time (e.g. 2027-01-05T17:00 or 2027-01-05T17:00+08:00)"
        ) from None


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
    _add_commitment_parsers(ticket, config_parent)


def _add_commitment_parsers(ticket: Any, config_parent: argparse.ArgumentParser) -> None:
    com = ticket.add_parser(
        "commit", parents=[config_parent], help="set the first commitment (before work starts only)"
    )
    com.add_argument("number")
    com.add_argument("--at", required=True, type=instant, help="ISO 8601; local time without offset")
    com.add_argument("--by", default="operator")
    ext = ticket.add_parser(
        "extend", parents=[config_parent], help="extend the commitment, and tell the requester"
    )
    ext.add_argument("number")
    ext.add_argument("--until", required=True, type=instant, help="the new commitment (ISO 8601)")
    ext.add_argument("--reason", required=True)
    ext.add_argument("--by", required=True)
    esc = ticket.add_parser(
        "escalate", parents=[config_parent], help="escalate to a team's lead or a person, who is told"
    )
    esc.add_argument("number")
    esc.add_argument("--to", required=True, help="a [teams.<name>], a [people.<name>] or an address")
    esc.add_argument("--reason", required=True)
    esc.add_argument("--by", required=True)
    esc.add_argument("--until", type=instant, help="a new commitment (ISO 8601)")
    show = ticket.add_parser("show", parents=[config_parent], help="deadlines and commitments")
    show.add_argument("number")


@on_sla_context
def run(engine: Engine, ctx: SlaContext, args: argparse.Namespace) -> int:
    if args.ticket_command in COMMITMENT_COMMANDS:
        return _commitment(engine, ctx, args)
    if args.ticket_command == "show":
        return _show(engine, ctx, args.number)
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


def _local(ctx: SlaContext, value: dt.datetime | None) -> dt.datetime | None:
    """A time from the command line, aware: without an offset it is in ``tickets.timezone``."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=local_zone(ctx.settings))


def _commitment(engine: Engine, ctx: SlaContext, args: argparse.Namespace) -> int:
    number, by = args.number, args.by
    if args.ticket_command == "commit":
        at = _local(ctx, args.at)
        assert at is not None  # required by the parser
        changed = commit(engine, ctx, number, at=at, by=by)
    elif args.ticket_command == "extend":
        until = _local(ctx, args.until)
        assert until is not None  # required by the parser
        changed = extend(engine, ctx, number, until=until, reason=args.reason, by=by)
    else:
        until = _local(ctx, args.until)
        changed = escalate(engine, ctx, number, to=args.to, reason=args.reason, by=by, until=until)
    print(f"{changed.number}: {args.ticket_command} done")
    _print_commitments(ctx, changed)
    for address in changed.mailed:
        print(f"  mailed: {address}")
    if args.ticket_command == "extend" and not changed.mailed:
        print("  the requester has no e-mail address: tell them yourself")
    return 0


def _print_commitments(ctx: SlaContext, changed: CommitmentChanged) -> None:
    settings = ctx.settings
    print(f"  standard time: {shown(changed.standard_due_at, settings)}")
    print(f"  first commitment: {shown(changed.first_commitment_at, settings)}")
    print(f"  commitment: {shown(changed.commitment_at, settings)}")
    print(f"  extensions: {changed.extension_count}, escalations: {changed.escalation_count}")


def _show(engine: Engine, ctx: SlaContext, number: str) -> int:
    """The ticket's status, deadlines and commitments (times in ``tickets.timezone``)."""
    with engine.connect() as conn:
        row = conn.execute(select(ticket_table).where(ticket_table.c.number == number)).mappings().first()
    if row is None:
        raise TicketNotFound(number)
    settings = ctx.settings
    print(f"{number}: {row['status']}, priority {row['priority'] or '-'}, team {row['team'] or '-'}")
    for label, key in (
        ("triage due", "triage_due_at"),
        ("response due", "response_due_at"),
        ("resolution due", "resolution_due_at"),
        ("work started", "first_response_at"),
        ("resolved", "resolved_at"),
    ):
        print(f"  {label}: {shown(row[key], settings)}")
    changed = CommitmentChanged(
        number=number,
        standard_due_at=row["standard_due_at"],
        first_commitment_at=row["first_commitment_at"],
        commitment_at=row["commitment_at"],
        extension_count=row["extension_count"],
        escalation_count=row["escalation_count"],
        mailed=(),
    )
    _print_commitments(ctx, changed)
    return 0
