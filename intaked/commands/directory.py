"""``intaked directory lookup``: find an employee in the directory by e-mail address or phone."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from intaked.commands.shared import EXIT_NOT_FOUND, print_json
from intaked.config import Settings
from intaked.routing.directory import Person, directory_for


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    directory = sub.add_parser("directory", help="the employee directory").add_subparsers(
        dest="directory_command", required=True
    )
    lookup = directory.add_parser(
        "lookup", parents=[config_parent], help="find an employee by e-mail address or phone number"
    )
    lookup.add_argument("key", metavar="EMAIL|PHONE")
    lookup.add_argument("--json", action="store_true", help="JSON output")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.directory.path:
        print("intaked: no directory configured ([directory] path)", file=sys.stderr)
        return EXIT_NOT_FOUND
    directory = directory_for(settings)
    directory.refresh(force=True)
    if directory.last_error:
        print(f"intaked: warning: {directory.last_error}", file=sys.stderr)
    person = directory.lookup(args.key)
    if person is None:
        print(f"intaked: no one in the directory with {args.key!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        print_json(person_json(person))
    else:
        print(person_line(person))
    return 0


def person_json(person: Person | None) -> dict[str, Any] | None:
    """A directory entry as JSON (also in ``intaked rules test --json``)."""
    if person is None:
        return None
    return {
        "name": person.name,
        "email": person.email,
        "phones": list(person.phones),
        "extension": person.extension,
        "department": person.department,
        "site": person.site,
        "manager": person.manager,
    }


def person_line(person: Person) -> str:
    """A directory entry on one line (also in ``intaked rules test``)."""
    parts = [person.name or "-", f"<{person.email}>" if person.email else ""]
    parts += [f"phones {', '.join(person.phones)}" if person.phones else ""]
    parts += [f"ext. {person.extension}" if person.extension else ""]
    parts += [f"department {person.department}" if person.department else ""]
    parts += [f"site {person.site}" if person.site else ""]
    parts += [f"manager {person.manager}" if person.manager else ""]
    return "  ".join(p for p in parts if p)
