"""The working-time commands of ``intaked``: calendars, deadlines, triage, take, resolve, sweep."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from sqlalchemy import Engine, select

from intaked.config import Settings
from intaked.lifecycle import (
    InvalidChange,
    TicketNotFound,
    release,
    remove_override,
    resolve,
    set_override,
    take,
    triage,
)
from intaked.sla.context import load_context
from intaked.sla.deadlines import Deadlines, compute
from intaked.sla.sweeper import sweep
from intaked.store.engine import engine_for, read_only
from intaked.store.models import PRIORITIES, ticket_table

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
COMMANDS = ("calendar", "sla", "ticket", "sweep")


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date and time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. 2026-12-24T16:00:00+08:00)")
    return value


def add_parsers(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    calendar = sub.add_parser("calendar", help="working calendars").add_subparsers(
        dest="calendar_command", required=True
    )
    for name, what in (
        ("add-holiday", "a day off (typhoon day, company holiday)"),
        ("add-workday", "a working day (補班)"),
    ):
        cmd = calendar.add_parser(name, parents=[config_parent], help=f"add {what}, stored in the database")
        cmd.add_argument("date", type=_day)
        cmd.add_argument("--name", required=True)
        cmd.add_argument("--calendar", default="")
        cmd.add_argument("--by", default="operator")
    remove = calendar.add_parser("remove", parents=[config_parent], help="remove a run-time override")
    remove.add_argument("date", type=_day)
    remove.add_argument("--calendar", default="")
    show = calendar.add_parser(
        "show", parents=[config_parent], help="a year's days off and extra working days"
    )
    show.add_argument("--year", type=int, default=dt.date.today().year)
    show.add_argument("--calendar", default="")
    show.add_argument("--json", action="store_true")

    sla = sub.add_parser("sla", help="SLA deadlines").add_subparsers(dest="sla_command", required=True)
    deadlines = sla.add_parser("deadlines", parents=[config_parent], help="when is it due?")
    deadlines.add_argument("--priority", required=True, choices=PRIORITIES)
    deadlines.add_argument("--start", required=True, type=_instant)
    deadlines.add_argument("--calendar", default="")
    deadlines.add_argument("--json", action="store_true")
    explain = sla.add_parser(
        "explain", parents=[config_parent], help="how a ticket's deadlines were computed"
    )
    explain.add_argument("number")
    explain.add_argument("--json", action="store_true")

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

    sw = sub.add_parser("sweep", parents=[config_parent], help="close resolved tickets whose time has come")
    sw.add_argument("--now", type=_instant, help="as if it were this time (ISO 8601 with offset)")
    sw.add_argument("--dry-run", action="store_true", help="only list what would close")
    sw.add_argument("--json", action="store_true")


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.command == "calendar":
            return _calendar(settings, args)
        if args.command == "sla":
            return _sla(settings, args)
        if args.command == "ticket":
            return _ticket(settings, args)
        return _sweep(settings, args)
    except TicketNotFound as exc:
        print(f"intaked: no ticket {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except InvalidChange as exc:
        print(f"intaked: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _engine(settings: Settings) -> Engine:
    return engine_for(settings, pool_size=2)


def _iso(value: dt.datetime | None, tz: Any = None) -> str | None:
    if value is None:
        return None
    return (value.astimezone(tz) if tz is not None else value).isoformat()


def _calendar(settings: Settings, args: argparse.Namespace) -> int:
    name = args.calendar or settings.sla.calendar
    engine = _engine(settings)
    try:
        command = args.calendar_command
        if command in ("add-holiday", "add-workday"):
            kind = "holiday" if command == "add-holiday" else "workday"
            count = set_override(engine, settings, name, args.date, kind, args.name, args.by)
            what = "day off" if kind == "holiday" else "working day"
            print(f"{args.date} is now a {what} on calendar {name!r} ({args.name})")
            print(f"{count} open ticket(s) got new deadlines")
            return 0
        if command == "remove":
            removed = remove_override(engine, settings, name, args.date)
            if removed is None:
                print(f"intaked: no run-time override on {args.date} for calendar {name!r}", file=sys.stderr)
                return EXIT_NOT_FOUND
            print(f"override on {args.date} removed from calendar {name!r}")
            print(f"{removed} open ticket(s) got new deadlines")
            return 0
        if name not in settings.calendars:
            raise InvalidChange(f"no calendar named {name!r}")
        calendar = load_context(engine, settings).calendars[name]
        off = calendar.non_working_days(args.year)
        extra = calendar.extra_working_days(args.year)
        if args.json:
            print(
                json.dumps(
                    {
                        "calendar": name,
                        "timezone": str(calendar.tz),
                        "year": args.year,
                        "non_working_days": [{"date": d.isoformat(), "name": n} for d, n in off],
                        "extra_working_days": [{"date": d.isoformat(), "name": n} for d, n in extra],
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
            return 0
        print(f"calendar {name!r} ({calendar.tz}), {args.year}")
        print("days off (on what would be working days):")
        for day, why in off:
            print(f"  {day} {day:%a}  {why}")
        print("extra working days:")
        for day, why in extra:
            print(f"  {day} {day:%a}  {why}")
        return 0
    finally:
        engine.dispose()


def _deadline_json(deadlines: Deadlines, tz: Any) -> dict[str, Any]:
    return {
        "response_due": _iso(deadlines.response_due_at, tz),
        "resolution_due": _iso(deadlines.resolution_due_at, tz),
    }


def _sla(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        ctx = load_context(engine, settings)
        if args.sla_command == "deadlines":
            name = args.calendar or settings.sla.calendar
            if name not in ctx.calendars:
                raise InvalidChange(f"no calendar named {name!r}")
            if name != settings.sla.calendar:
                ctx = _with_default_calendar(ctx, name)
            start = args.start.astimezone(dt.UTC)
            probe = {
                "team": None,
                "created_at": start,
                "occurred_at": start,
                "priority": args.priority,
                "status": "new",
                "sla_paused_seconds": 0.0,
                "resolved_at": None,
                "triage_breached_at": None,
                "first_response_at": None,
                "response_warned_at": None,
                "response_breached_at": None,
                "resolution_warned_at": None,
                "resolution_breached_at": None,
            }
            deadlines = compute(ctx, probe)
            tz = ctx.calendars[name].tz
            if args.json:
                print(json.dumps(_deadline_json(deadlines, tz)))
            else:
                print(f"response due:   {_iso(deadlines.response_due_at, tz)}")
                print(f"resolution due: {_iso(deadlines.resolution_due_at, tz)}")
            return 0
        with read_only(engine).connect() as conn:
            row = (
                conn.execute(select(ticket_table).where(ticket_table.c.number == args.number))
                .mappings()
                .first()
            )
        if row is None:
            raise TicketNotFound(args.number)
        return _explain(ctx, row, args.json)
    finally:
        engine.dispose()


def _with_default_calendar(ctx: Any, name: str) -> Any:
    from dataclasses import replace

    sla = ctx.settings.sla.model_copy(update={"calendar": name})
    return replace(ctx, settings=ctx.settings.model_copy(update={"sla": sla}))


def _explain(ctx: Any, row: Any, as_json: bool) -> int:
    deadlines = compute(ctx, row)
    snapshot = json.loads(row["sla_snapshot"]) if row["sla_snapshot"] else {}
    tz = ctx.calendars[deadlines.calendar].tz
    stored = {
        key: _iso(row[key], tz)
        for key in (
            "created_at",
            "occurred_at",
            "triaged_at",
            "first_response_at",
            "resolved_at",
            "closed_at",
            "triage_due_at",
            "response_due_at",
            "resolution_due_at",
            "auto_close_at",
            "triage_breached_at",
            "response_warned_at",
            "response_breached_at",
            "resolution_warned_at",
            "resolution_breached_at",
            "sla_paused_at",
        )
    }
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
        spec = snapshot.get(target)
        if not spec:
            continue
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
    if row["sla_paused_at"] is not None:
        print(f"resolution clock paused since {stored['sla_paused_at']} (waiting on the requester)")
    return 0


def _ticket(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        ctx = load_context(engine, settings)
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
                print(f"  {label}: {_iso(value, tz)}")
        return 0
    finally:
        engine.dispose()


def _sweep(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine(settings)
    try:
        closed = sweep(engine, args.now, dry_run=args.dry_run)
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
