"""``intaked security level|aware|notified|set|form``: security incidents (docs/security-incidents.md).

- ``level NUMBER --level 1..4|A..D``: the level (4 the most severe; the seed's A = 4 ... D = 1);
- ``aware NUMBER --at ISO``: when the organisation became aware (the clocks count from it);
- ``notified NUMBER --at ISO``: the authority was notified (the notification clock stops);
- ``set NUMBER FIELD VALUE``: one field of the report form ("" clears it);
- ``form NUMBER [--format text|json|pdf]``: the report form, in Traditional Chinese (pdf to
  ``--output`` or stdout).

Exit codes: 1 no such ticket; 2 a value refused (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from intaked.commands.shared import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    Reported,
    aware_instant,
    iso,
    open_engine,
    print_json,
    reporting,
)
from intaked.config import Settings
from intaked.security import actions, form, render
from intaked.security.levels import parse_level

ERRORS = (
    Reported(actions.NoSuchTicket, "no ticket {}", EXIT_NOT_FOUND),
    Reported(actions.NotSecurityIncident, "{}", EXIT_USAGE),
    Reported(form.InvalidField, "{}", EXIT_USAGE),
)


def _level(text: str) -> int:
    try:
        return parse_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    security = sub.add_parser("security", help="security incidents").add_subparsers(
        dest="security_command", required=True
    )
    level = security.add_parser("level", parents=[config_parent], help="set the level (4 most severe)")
    level.add_argument("number")
    level.add_argument("--level", required=True, type=_level, help="1..4 (4 most severe) or A..D (A = 4)")
    for verb, helptext in (("aware", "when we became aware"), ("notified", "the authority was notified")):
        parser = security.add_parser(verb, parents=[config_parent], help=helptext)
        parser.add_argument("number")
        parser.add_argument("--at", required=True, type=aware_instant)
    setter = security.add_parser("set", parents=[config_parent], help="set a field of the report form")
    setter.add_argument("number")
    setter.add_argument("field", choices=list(form.BY_NAME), metavar="FIELD")
    setter.add_argument("value")
    shown = security.add_parser("form", parents=[config_parent], help="the report form (資通安全事件通報單)")
    shown.add_argument("number")
    shown.add_argument("--format", choices=("text", "json", "pdf"), default="text")
    shown.add_argument("--output", metavar="PATH", help="write the PDF here (default: stdout)")
    for parser in (level, setter, *(security.choices[v] for v in ("aware", "notified"))):
        parser.add_argument("--by", default="operator")


def run(settings: Settings, args: argparse.Namespace) -> int:
    return reporting(lambda: _run(settings, args), ERRORS)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_engine(settings)
    try:
        command = args.security_command
        if command == "form":
            return _form(engine, settings, args)
        if command == "set":
            form.set_field(engine, args.number, args.field, args.value, by=args.by)
            print(f"{args.number}: {args.field} set")
            return 0
        if command == "level":
            row = actions.set_level(engine, settings, args.number, args.level, by=args.by)
        elif command == "aware":
            row = actions.set_aware(engine, settings, args.number, args.at, by=args.by)
        else:
            row = actions.set_notified(engine, settings, args.number, args.at, by=args.by)
        _print_clocks(row)
        return 0
    finally:
        engine.dispose()


def _print_clocks(row: Mapping[Any, Any]) -> None:
    print(f"ticket:          {row['number']}")
    print(f"level:           {row['security_level'] or '-'}")
    print(f"aware at:        {iso(row['security_aware_at'])}")
    print(f"notify due:      {iso(row['security_notify_due_at'])}")
    print(f"notified at:     {iso(row['security_notified_at']) or '-'}")
    print(f"contain due:     {iso(row['security_contain_due_at']) or '-'}")


def _form(engine: Any, settings: Settings, args: argparse.Namespace) -> int:
    doc = render.document(engine, settings, args.number)
    if args.format == "json":
        print_json(doc)
    elif args.format == "text":
        sys.stdout.write(render.text(doc))
    else:
        data = render.pdf(doc)
        if args.output:
            with open(args.output, "wb") as out:
                out.write(data)
        else:
            sys.stdout.buffer.write(data)
    return 0
