"""``intaked incident convene NUMBER --team server --team database [--by NAME]``: page those
teams' on-call about major incident NUMBER (intaked/paging/convene.py); their answers (an SMS
reply or a key on the call) are recorded as ``convene_joined``.

:func:`add_convene` registers the subcommand under ``intaked incident`` (the verb's module,
intaked/commands/incident.py, calls it with its subparsers), :func:`run_convene` carries it out.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from intaked.commands.shared import EXIT_USAGE, open_engine
from intaked.config import Settings
from intaked.paging.convene import ConveneRefused, convene
from intaked.paging.oncall import UnknownTarget

SUBCOMMAND = "convene"


def add_convene(incident: Any, config_parent: argparse.ArgumentParser) -> None:
    """Add ``convene`` to the ``intaked incident`` subparsers ``incident``."""
    parser = incident.add_parser(
        SUBCOMMAND, parents=[config_parent], help="page L3 teams' on-call to a major incident"
    )
    parser.add_argument("number", help="the incident's ticket number, e.g. IT-202611-00042")
    parser.add_argument(
        "--team", action="append", required=True, help="a [teams.<name>] to convene (repeatable)"
    )
    parser.add_argument("--by", default="operator", help="who convenes (the incident commander)")


def run_convene(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_engine(settings)
    try:
        result = convene(engine, settings, args.number, args.team, by=args.by)
    except (ConveneRefused, UnknownTarget, LookupError) as exc:
        print(f"intaked: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    for team, people in result.paged.items():
        who = ", ".join(people) if people else "nobody new (already convened)"
        print(f"{result.number}: {team}: paged {who}")
    return 0
