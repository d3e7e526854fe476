"""The ``intaked`` command line, one module per top-level verb.

Each module here (``intaked.commands.<verb>``, a hyphen written as an underscore) exposes
``add_parser(sub, config_parent)``, which adds its verb to the top-level subparsers, and
``run(settings, args) -> int``, which carries it out and returns the exit code. The commands only
parse, call the domain code and print; :mod:`intaked.cli` is the entry point that assembles them.

A verb's module is imported only when the parser is built with it: ``intaked run`` builds its
command line from :mod:`intaked.commands.run` alone, so the daemon's front process does not import
the SLA, paging, routing and parsing code the operator's commands bring in.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from intaked import __version__
from intaked.config import Settings

DAEMON_VERB = "run"

# Every verb, in the order ``intaked --help`` lists them, and the module that implements it.
VERBS: dict[str, str] = {
    "run": "run",
    "check-config": "check_config",
    "db": "db",
    "tickets": "tickets",
    "imap": "imap",
    "templates": "templates",
    "outbox": "outbox",
    "reprocess": "reprocess",
    "calendar": "calendars",  # not calendar.py: that name is the standard library's
    "sla": "sla",
    "ticket": "ticket",
    "sweep": "sweep",
    "page": "page",
    "incident": "incident",
    "oncall": "oncall",
    "rules": "rules",
    "directory": "directory",
    "calls": "calls",
    "report": "report",
    "status": "status",
}


class Command(Protocol):
    """A module of :mod:`intaked.commands`: one top-level verb."""

    def add_parser(self, sub: Any, config_parent: argparse.ArgumentParser) -> None: ...

    def run(self, settings: Settings, args: argparse.Namespace) -> int: ...


def command(verb: str) -> Command:
    """The module implementing ``verb`` (imported on first use)."""
    module: Command = importlib.import_module(f"{__name__}.{VERBS[verb]}")
    return module


def build_parser(verbs: Sequence[str] = tuple(VERBS)) -> argparse.ArgumentParser:
    """The ``intaked`` parser with ``verbs`` (all of them unless told)."""
    parser = argparse.ArgumentParser(prog="intaked", description="IT helpdesk intake daemon")
    parser.add_argument("--version", action="version", version=f"intaked {__version__}")
    config_parent = argparse.ArgumentParser(add_help=False)
    config_parent.add_argument("--config", metavar="PATH", help="TOML config file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in verbs:
        command(verb).add_parser(sub, config_parent)
    return parser
