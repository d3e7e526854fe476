"""``intaked calls list``: the hotline's calls as an operator sees them (read-only).

Each call, newest first: when it started (in ``tickets.timezone``, Asia/Taipei by default), the
caller, the ticket it filed or joined, how long it lasted, its outcome (voicemail, missed,
answered by desk, in progress), the voicemail's length, whether someone must call back (the
ticket's ``callback_requested``) and the start of the transcript. ``--since`` takes an ISO 8601
time (without an offset: in the tickets' time zone) or a duration back from now (``90m``, ``2h``,
``7d``, ``1h30m``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from typing import Any
from zoneinfo import ZoneInfo

from intaked.commands.shared import EXIT_USAGE, open_engine, print_json, schema_missing
from intaked.config import Settings
from intaked.store.queries import DEFAULT_CALLS_LIMIT, list_calls

EXCERPT_CHARS = 40
OUTCOME_LABELS = {
    "voicemail": "voicemail",
    "missed": "missed",
    "answered_by_desk": "answered by desk",
    "in_progress": "in progress",
}
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_since(text: str, tz: dt.tzinfo, now: dt.datetime | None = None) -> dt.datetime:
    """``text`` as an instant: ISO 8601 (naive: in ``tz``) or a duration back from ``now``."""
    value = text.strip()
    match = _DURATION.fullmatch(value.lower())
    if value and match is not None and any(match.groups()):
        weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        span = dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
        return (now or dt.datetime.now(dt.UTC)) - span
    try:
        instant = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO 8601 time nor a duration such as 90m, 2h or 7d"
        ) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=tz)


def _limit(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    calls = sub.add_parser("calls", help="hotline calls").add_subparsers(dest="calls_command", required=True)
    listing = calls.add_parser(
        "list", parents=[config_parent], help="the newest calls: ticket, duration, outcome, voicemail"
    )
    listing.add_argument(
        "--since", metavar="ISO|DURATION", help="only calls started since then (e.g. 2h, 7d)"
    )
    listing.add_argument("--limit", type=_limit, default=DEFAULT_CALLS_LIMIT)
    listing.add_argument("--json", action="store_true")


def run(settings: Settings, args: argparse.Namespace) -> int:
    tz = ZoneInfo(settings.tickets.timezone)
    try:
        since = parse_since(args.since, tz) if args.since else None
    except argparse.ArgumentTypeError as exc:
        print(f"intaked: --since: {exc}", file=sys.stderr)
        return EXIT_USAGE
    engine = open_engine(settings)
    try:
        rows = (
            []
            if schema_missing(engine, "calls")
            else list_calls(engine, since=since, limit=args.limit, tz=tz)
        )
    finally:
        engine.dispose()
    if args.json:
        print_json(rows)
    else:
        print_calls(rows, settings.tickets.timezone)
    return 0


def _seconds(value: int | None) -> str:
    return "-" if value is None else f"{value // 60}:{value % 60:02d}"


def excerpt(text: str | None, width: int = EXCERPT_CHARS) -> str:
    """The start of ``text`` on one line, with an ellipsis when cut."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def print_calls(rows: list[dict[str, Any]], zone: str) -> None:
    """The calls as a table."""
    if not rows:
        print("no calls")
        return
    print(
        f"{'STARTED (' + zone + ')':<26} {'CALLER':<18} {'TICKET':<18} {'LENGTH':>6} "
        f"{'OUTCOME':<17} {'VOICEMAIL':>9} {'CALL BACK':<9} TRANSCRIPT"
    )
    for row in rows:
        started = (row["started_at"] or "")[:19].replace("T", " ")
        voicemail = _seconds(row["recording_seconds"]) if row["outcome"] == "voicemail" else ""
        if row["recording_error"]:
            voicemail = row["recording_error"]
        line = (
            f"{started:<26} {row['from']:<18} {row['ticket']:<18} {_seconds(row['duration_seconds']):>6} "
            f"{OUTCOME_LABELS.get(row['outcome'], row['outcome']):<17} {voicemail:>9} "
            f"{'yes' if row['callback_requested'] else '':<9} {excerpt(row['transcript'])}"
        )
        print(line.rstrip())
