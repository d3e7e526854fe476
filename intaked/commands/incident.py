"""``intaked incident ...``: major incidents (issue 19). In this branch only ``convene``
(intaked/commands/convene.py); link, unlink, update and show join it from their own module."""

from __future__ import annotations

import argparse
from typing import Any

from intaked.commands.convene import SUBCOMMAND, add_convene, run_convene
from intaked.config import Settings


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    incident = sub.add_parser("incident", help="major incidents").add_subparsers(
        dest="incident_command", required=True
    )
    add_convene(incident, config_parent)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.incident_command == SUBCOMMAND:
        return run_convene(settings, args)
    raise AssertionError(args.incident_command)  # argparse allows nothing else
