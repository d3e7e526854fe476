"""How the working-time commands (calendar, sla, ticket, sweep) report a ticket that does not exist
(exit 1) and a change the ticket's lifecycle refuses (exit 2)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from intaked.commands.shared import EXIT_NOT_FOUND, EXIT_USAGE
from intaked.config import Settings
from intaked.tickets.lifecycle import InvalidChange, TicketNotFound

Handler = Callable[[Settings, argparse.Namespace], int]


def reporting_lifecycle_errors(handler: Handler) -> Handler:
    """``handler``, with :class:`TicketNotFound` and :class:`InvalidChange` told on stderr."""

    @functools.wraps(handler)
    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return handler(settings, args)
        except TicketNotFound as exc:
            print(f"intaked: no ticket {exc}", file=sys.stderr)
            return EXIT_NOT_FOUND
        except InvalidChange as exc:
            print(f"intaked: {exc}", file=sys.stderr)
            return EXIT_USAGE

    return run
