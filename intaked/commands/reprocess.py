"""``intaked reprocess NUMBER``: re-parse a ticket's stored raw mail (after a parser fix)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from intaked.commands.shared import EXIT_NOT_FOUND, open_engine
from intaked.config import Settings
from intaked.intake.reprocess import TicketNotFound, describe, reprocess_ticket


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    reprocess = sub.add_parser(
        "reprocess", parents=[config_parent], help="re-parse a ticket's stored raw mail (after a parser fix)"
    )
    reprocess.add_argument("number")


def run(settings: Settings, args: argparse.Namespace) -> int:
    number = args.number
    engine = open_engine(settings)
    try:
        results = reprocess_ticket(engine, number)
    except TicketNotFound:
        print(f"no ticket {number}", file=sys.stderr)
        return EXIT_NOT_FOUND
    finally:
        engine.dispose()
    print(f"{number}: re-parsed {len(results)} message(s)")
    print(describe(results))
    return 0
