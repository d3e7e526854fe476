"""``intaked calendar add-holiday|add-workday|remove|show``: the working calendars' run-time days
off and extra working days (stored in the database; open tickets get new deadlines at once)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from intaked.commands.lifecycle_errors import reporting_lifecycle_errors
from intaked.commands.shared import EXIT_NOT_FOUND, open_engine
from intaked.config import Settings
from intaked.sla.calendar import WorkingCalendar
from intaked.sla.context import load_context
from intaked.tickets.lifecycle import InvalidChange, remove_override, set_override


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
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


@reporting_lifecycle_errors
def run(settings: Settings, args: argparse.Namespace) -> int:
    name = args.calendar or settings.sla.calendar
    engine = open_engine(settings)
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
        _show(name, load_context(engine, settings).calendars[name], args.year, as_json=args.json)
        return 0
    finally:
        engine.dispose()


def _show(name: str, calendar: WorkingCalendar, year: int, *, as_json: bool) -> None:
    off = calendar.non_working_days(year)
    extra = calendar.extra_working_days(year)
    if as_json:
        print(
            json.dumps(
                {
                    "calendar": name,
                    "timezone": str(calendar.tz),
                    "year": year,
                    "non_working_days": [{"date": d.isoformat(), "name": n} for d, n in off],
                    "extra_working_days": [{"date": d.isoformat(), "name": n} for d, n in extra],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    print(f"calendar {name!r} ({calendar.tz}), {year}")
    print("days off (on what would be working days):")
    for day, why in off:
        print(f"  {day} {day:%a}  {why}")
    print("extra working days:")
    for day, why in extra:
        print(f"  {day} {day:%a}  {why}")
