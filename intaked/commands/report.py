"""``intaked report service-level``: the service-level report of a period (issue 18; seed 003's
weekly service request index), per team, handler or priority.

``--from`` and ``--to`` are dates (YYYY-MM-DD), both included, in ``tickets.timezone``.
``--format``: ``text`` (aligned tables, headings in Chinese and English), ``json`` (the document
other tools read: docs/service-levels.md), ``csv`` (one line per group and the total), ``html`` (a
self-contained page). A bad date, a period that ends before it starts or an unknown grouping is
wrong usage (exit 2); a store without its schema exits 69.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from typing import Any

from intaked.commands.shared import EXIT_UNAVAILABLE, EXIT_USAGE, open_engine, schema_missing
from intaked.config import Settings
from intaked.reports.formats import as_csv, as_html, as_text
from intaked.reports.service_level import GROUPINGS, ReportError, build_report

FORMATS: dict[str, Callable[[dict[str, Any]], str]] = {
    "text": as_text,
    "json": lambda report: json.dumps(report, ensure_ascii=False, indent=2) + "\n",
    "csv": as_csv,
    "html": as_html,
}


def iso_date(text: str) -> dt.date:
    """An argument type: a calendar date, YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    report = sub.add_parser("report", help="service reports").add_subparsers(
        dest="report_command", required=True
    )
    level = report.add_parser(
        "service-level",
        parents=[config_parent],
        help="carried over, new, on time, late, escalations, rates, SLA and hotline figures of a period",
    )
    level.add_argument("--from", dest="start", required=True, type=iso_date, metavar="DATE")
    level.add_argument("--to", dest="end", required=True, type=iso_date, metavar="DATE")
    level.add_argument("--by", default="team", choices=list(GROUPINGS))
    level.add_argument("--format", default="text", choices=list(FORMATS))


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.end < args.start:
        print(f"intaked: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return EXIT_USAGE
    engine = open_engine(settings)
    try:
        if schema_missing(engine, "tickets"):
            return EXIT_UNAVAILABLE
        report = build_report(engine, settings, args.start, args.end, args.by)
    except ReportError as exc:
        print(f"intaked: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    sys.stdout.write(FORMATS[args.format](report))
    return 0
