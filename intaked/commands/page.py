"""``intaked page ack|show|test``: acknowledge a ticket's page from a terminal, the timeline of a
ticket's page (who was paged how, and what happened), and a trial page to one person."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from intaked.commands.shared import EXIT_NOT_FOUND, EXIT_USAGE, iso, iso_in, open_engine
from intaked.config import Settings
from intaked.paging.convene import is_convene
from intaked.paging.outcomes import acknowledge_ticket
from intaked.paging.queries import timeline
from intaked.paging.rows import PageNotFound
from intaked.paging.trial import CHANNELS, TrialPageRefused, queue_trial_page
from intaked.store.engine import read_only
from intaked.twilio.page_replies import voice_settings
from intaked.twilio.twiml import say_twiml


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    page = sub.add_parser("page", help="QRC pages").add_subparsers(dest="page_command", required=True)
    ack = page.add_parser("ack", parents=[config_parent], help="acknowledge a ticket's page")
    ack.add_argument("number", help="ticket number, e.g. IT-202611-00042")
    ack.add_argument("--by", required=True, help="who acknowledges (becomes incident commander)")
    show = page.add_parser("show", parents=[config_parent], help="a ticket's page, step by step")
    show.add_argument("number")
    show.add_argument("--json", action="store_true")
    test = page.add_parser(
        "test",
        parents=[config_parent],
        help="send one person a trial page (no ticket): check a contact method",
    )
    test.add_argument("--person", required=True, help="a name under [people]")
    test.add_argument("--channel", choices=CHANNELS, default="sms")


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_engine(settings)
    try:
        if args.page_command == "test":
            return _trial(engine, settings, args.person, args.channel)
        if args.page_command == "ack":
            result = acknowledge_ticket(engine, settings, args.number, by=args.by)
            if result.acknowledged:
                print(f"{result.number}: acknowledged by {result.by}; escalation stopped")
            else:
                print(
                    f"{result.number}: page already {result.state}"
                    + (f" by {result.by}" if result.by else "")
                )
            return 0
        with read_only(engine).connect() as conn:
            page, attempts = timeline(conn, args.number)
        _print_timeline(args.number, page, attempts, as_json=args.json)
        return 0
    except PageNotFound as exc:
        print(f"intaked: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    finally:
        engine.dispose()


def _trial(engine: Any, settings: Settings, person: str, channel: str) -> int:
    voice = voice_settings(settings)
    try:
        outbox_id = queue_trial_page(
            engine, settings, person, channel, lambda zh, en: say_twiml(voice, zh, en)
        )
    except TrialPageRefused as exc:
        print(f"intaked: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"trial {channel} to {person} queued as outbox row {outbox_id}; the running daemon sends it")
    print("  (`intaked outbox list` shows when it went out, or why not)")
    return 0


def _print_timeline(number: str, page: Any, attempts: list[Any], *, as_json: bool) -> None:
    times = ("created_at", "sent_at", "delivered_at", "answered_at", "ended_at", "acknowledged_at")
    if as_json:
        out = {
            "ticket": number,
            "page": {k: iso(v) for k, v in page.items() if k != "policy"},
            "policy": json.loads(page["policy"]),
            "attempts": [{k: iso(v) for k, v in attempt.items()} for attempt in attempts],
        }
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return
    flag = " (unconfirmed)" if page["unconfirmed"] else ""
    team = json.loads(page["policy"]).get("team")
    flag += f" of team {team}" if team else ""
    print(f"{number}: {page['priority']} page{flag}, {page['state']}; reply code {page['reply_code']}")
    print(f"  started {iso_in(page['started_at'])}: {page['reason']}")
    events: list[tuple[Any, str]] = []
    for a in attempts:
        when = "convened" if is_convene(a) else f"round {a['round'] + 1} step {a['step'] + 1}"
        who = f"{when}: {a['channel']} to {a['person']} ({a['address']})"
        if a["retry"]:
            who += f" re-dial {a['retry']}"
        for column in times:
            if a[column] is not None:
                what = column.removesuffix("_at")
                detail = ""
                if what == "ended" and a["status"] in ("failed", "cancelled", "completed"):
                    what = a["status"]
                    detail = f" {a['error_code'] or ''} {a['error'] or ''}".rstrip()
                events.append((a[column], f"{who}: {what}{detail}"))
    for at, line in sorted(events, key=lambda item: item[0]):
        print(f"  {iso_in(at)}  {line}")
    if page["acknowledged_at"] is not None:
        by, how = page["acknowledged_by"], page["ack_channel"]
        print(f"  {iso_in(page['acknowledged_at'])}  acknowledged by {by} ({how})")
    elif page["state"] == "active" and page["next_step_at"] is not None:
        print(f"  next step at {iso_in(page['next_step_at'])}")
    if page["fallback_sent_at"] is not None:
        print(f"  {iso_in(page['fallback_sent_at'])}  paged by e-mail (provider unreachable)")
