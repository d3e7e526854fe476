"""``intaked incident link|unlink|show|update|convene``: major incidents (docs/paging.md): link a
report to the paged ticket of its outage or unlink it, list an incident's linked tickets, send
every linked requester a status update, and page other teams' on-call into the war room
(``convene``, its own module: intaked/commands/convene.py).

Each subcommand is one row of :data:`SUBCOMMANDS`: its help, a function adding its arguments and
one carrying it out (settings, engine, arguments → exit code). A new subcommand is a new row."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from intaked.commands.convene import SUBCOMMAND as CONVENE
from intaked.commands.convene import add_convene, run_convene
from intaked.commands.shared import EXIT_USAGE, iso_in, open_engine
from intaked.config import Settings
from intaked.incidents.links import LinkRefused, link, show, unlink
from intaked.incidents.updates import send_update


class Subcommand(NamedTuple):
    """One ``intaked incident`` subcommand."""

    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Settings, Engine, argparse.Namespace], int]


def _link_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="the report, e.g. IT-202612-00043")
    parser.add_argument("--to", required=True, metavar="NUMBER", help="the major incident (the paged ticket)")
    parser.add_argument("--by", default="operator", help="who links it (recorded in the events)")


def _unlink_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="a ticket linked to a major incident")
    parser.add_argument("--by", default="operator", help="who unlinks it (recorded in the events)")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="the major incident")


def _update_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="the major incident")
    parser.add_argument("--text", required=True, help="the update, as the requesters will read it")
    parser.add_argument("--by", default="operator", help="who sends it (recorded in the events)")


def _run_link(settings: Settings, engine: Engine, args: argparse.Namespace) -> int:
    print(link(engine, args.number, args.to, by=args.by))
    return 0


def _run_unlink(settings: Settings, engine: Engine, args: argparse.Namespace) -> int:
    print(unlink(engine, args.number, by=args.by))
    return 0


def _run_show(settings: Settings, engine: Engine, args: argparse.Namespace) -> int:
    incident, linked = show(engine, args.number)
    tz = ZoneInfo(settings.tickets.timezone)
    commander = incident["incident_commander"] or "none yet"
    print(f"{incident['number']}: {incident['status']}, {incident['subject']} (commander: {commander})")
    print(f"  {len(linked)} linked ticket{'s' if len(linked) != 1 else ''}")
    for row in linked:
        who = row["requester_name"] or row["requester_email"] or row["requester_phone"] or "(unknown)"
        when = iso_in(row["created_at"], tz)
        print(f"  {row['number']}  {row['status']:<8} {row['channel']:<6} {when}  {who}: {row['subject']}")
    return 0


def _run_update(settings: Settings, engine: Engine, args: argparse.Namespace) -> int:
    sent = send_update(engine, settings, args.number, args.text, by=args.by)
    print(f"{sent.number}: update {sent.update} queued to {sent.mails} by mail and {sent.sms} by SMS")
    return 0


#: The subcommands, in the order ``intaked incident --help`` lists them.
SUBCOMMANDS: dict[str, Subcommand] = {
    "link": Subcommand("link a report to a major incident", _link_arguments, _run_link),
    "unlink": Subcommand("unlink a report from its major incident", _unlink_arguments, _run_unlink),
    "show": Subcommand("a major incident and its linked tickets", _show_arguments, _run_show),
    "update": Subcommand("send every linked requester a status update", _update_arguments, _run_update),
}


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    incident = sub.add_parser("incident", help="major incidents: linked reports, status updates")
    commands = incident.add_subparsers(dest="incident_command", required=True)
    for name, subcommand in SUBCOMMANDS.items():
        subcommand.arguments(commands.add_parser(name, parents=[config_parent], help=subcommand.help))
    add_convene(commands, config_parent)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.incident_command == CONVENE:
        return run_convene(settings, args)
    engine = open_engine(settings)
    try:
        return SUBCOMMANDS[args.incident_command].run(settings, engine, args)
    except LinkRefused as exc:
        print(f"intaked: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
