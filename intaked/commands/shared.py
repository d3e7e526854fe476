"""What the command modules share: the exit codes, the store they open, JSON and time output.

Exit codes: 0 success; 1 a looked-up thing does not exist; 2 wrong usage; 69 the store is
unreachable or on the wrong schema; 78 the configuration is invalid (sysexits EX_CONFIG).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Engine

from intaked.config import Settings
from intaked.store.engine import engine_for
from intaked.store.migrate import current_revision

EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78


class Reported(NamedTuple):
    """An error a command tells on stderr as ``intaked: <message>`` (``{}`` in ``message`` stands
    for the error's text), exiting with ``exit_code``."""

    error: type[Exception]
    message: str
    exit_code: int


def reporting(call: Callable[[], int], reports: Sequence[Reported]) -> int:
    """``call()``; an error of a class in ``reports`` (the first that matches) is told on stderr
    and becomes its exit code."""
    try:
        return call()
    except tuple(report.error for report in reports) as exc:
        report = next(report for report in reports if isinstance(exc, report.error))
        print(f"intaked: {report.message.format(exc)}", file=sys.stderr)
        return report.exit_code


def open_engine(settings: Settings) -> Engine:
    """The store, with the small pool a command needs (the caller disposes of it)."""
    return engine_for(settings, pool_size=2)


def schema_missing(engine: Engine, what: str) -> bool:
    """Whether the store has no schema yet; if so, says on stderr that it has no ``what`` yet and
    how to create it."""
    if current_revision(engine) is not None:
        return False
    print(f"the database has no {what} yet (schema not created: run `intaked db upgrade`)", file=sys.stderr)
    return True


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (dates and other objects as their ``str``)."""
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def iso(value: Any) -> Any:
    """A date or time in ISO 8601; any other value as it is."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def iso_in(value: dt.datetime | None, tz: dt.tzinfo | None = None) -> str | None:
    """``value`` in ISO 8601, in ``tz`` if given; None stays None."""
    if value is None:
        return None
    return (value.astimezone(tz) if tz is not None else value).isoformat()


def aware_instant(text: str) -> dt.datetime:
    """An argument type: an ISO 8601 date and time with its UTC offset."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date and time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. 2026-12-24T16:00:00+08:00)")
    return value
