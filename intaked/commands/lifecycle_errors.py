"""How the working-time commands (calendar, sla, ticket, sweep) report a ticket that does not exist
(exit 1) and a change the ticket's lifecycle or its commitments refuse (exit 2: a closed ticket, a
first commitment once work started, an extension not later than the current commitment, an
escalation to nobody configured), and the store and SLA context the ones acting on tickets run
with."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

from sqlalchemy import Engine

from intaked.commands.shared import EXIT_NOT_FOUND, EXIT_USAGE, Reported, open_engine, reporting
from intaked.config import Settings
from intaked.sla.context import SlaContext, load_context
from intaked.tickets.lifecycle import InvalidChange, TicketNotFound

Handler = Callable[[Settings, argparse.Namespace], int]
SlaHandler = Callable[[Engine, SlaContext, argparse.Namespace], int]

LIFECYCLE_ERRORS = (
    Reported(TicketNotFound, "no ticket {}", EXIT_NOT_FOUND),
    Reported(InvalidChange, "{}", EXIT_USAGE),
)


def reporting_lifecycle_errors(handler: Handler) -> Handler:
    """``handler``, with :class:`TicketNotFound` and :class:`InvalidChange` told on stderr."""

    @functools.wraps(handler)
    def run(settings: Settings, args: argparse.Namespace) -> int:
        return reporting(lambda: handler(settings, args), LIFECYCLE_ERRORS)

    return run


def on_sla_context(handler: SlaHandler) -> Handler:
    """``handler`` run on the store and its SLA context (calendars with their run-time overrides),
    the store closed after it, the lifecycle's errors reported as by :func:`reporting_lifecycle_errors`."""

    def run(settings: Settings, args: argparse.Namespace) -> int:
        engine = open_engine(settings)
        try:
            return handler(engine, load_context(engine, settings), args)
        finally:
            engine.dispose()

    return reporting_lifecycle_errors(run)
