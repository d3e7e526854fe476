"""``intaked tickets list|show``: read-only views of the tickets, as tables or JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from intaked.commands.shared import EXIT_NOT_FOUND, open_engine, print_json, schema_missing
from intaked.config import Settings
from intaked.store.queries import list_tickets, ticket_detail

DETAIL_FIELDS = (
    "number",
    "status",
    "priority",
    "channel",
    "subject",
    "requester_name",
    "requester_email",
    "requester_phone",
    "created_at",
    "updated_at",
    "standard_due_at",
    "first_commitment_at",
    "commitment_at",
    "extension_count",
    "escalation_count",
)


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    tickets = sub.add_parser("tickets", help="read-only views of tickets").add_subparsers(
        dest="tickets_command", required=True
    )
    list_cmd = tickets.add_parser("list", parents=[config_parent], help="the newest tickets")
    list_cmd.add_argument("--json", action="store_true", help="JSON output")
    list_cmd.add_argument("--limit", type=int, default=50)
    list_cmd.add_argument("--status", choices=["new", "open", "pending", "resolved", "closed", "spam"])
    show_cmd = tickets.add_parser("show", parents=[config_parent], help="one ticket in full")
    show_cmd.add_argument("number")
    show_cmd.add_argument("--json", action="store_true", help="JSON output")


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_engine(settings)
    try:
        if schema_missing(engine, "tickets"):
            if args.tickets_command == "list":
                if args.json:
                    print_json([])
                return 0
            return EXIT_NOT_FOUND
        if args.tickets_command == "list":
            rows = list_tickets(engine, limit=args.limit, status=args.status)
            if args.json:
                print_json(rows)
            else:
                _print_table(rows)
            return 0
        detail = ticket_detail(engine, args.number)
        if detail is None:
            print(f"no ticket {args.number}", file=sys.stderr)
            return EXIT_NOT_FOUND
        if args.json:
            print_json(detail)
        else:
            _print_detail(detail)
        return 0
    finally:
        engine.dispose()


def _print_table(rows: Sequence[dict[str, Any]]) -> None:
    print(f"{'NUMBER':<18} {'STATUS':<9} {'PRI':<4} {'CREATED (UTC)':<20} {'REQUESTER':<32} SUBJECT")
    for row in rows:
        requester = row["requester_email"] or row["requester_phone"] or ""
        print(
            f"{row['number']:<18} {row['status']:<9} {row['priority'] or '-':<4} "
            f"{row['created_at'][:19]:<20} {requester:<32} {row['subject'] or '(no subject)'}"
        )


def _print_detail(ticket: dict[str, Any]) -> None:
    for key in DETAIL_FIELDS:
        print(f"{key + ':':<20} {ticket[key] if ticket[key] is not None else '-'}")
    for message in ticket["messages"]:
        _print_message(message)
    print("\n--- events")
    for event in ticket["events"]:
        what = event["detail"] or event["after"] or ""
        print(f"{event['at']}  {event['actor']:<10} {event['kind']:<16} {what}")


def _print_message(message: dict[str, Any]) -> None:
    print(
        f"\n--- message {message['id']} ({message['direction']}, {message['channel']}) "
        f"from {message['sender'] or '-'} at {message['created_at']}"
    )
    print(f"Subject: {message['subject']}")
    if message["header_message_id"]:
        print(f"Message-ID: <{message['header_message_id']}>")
    for attachment in message["attachments"]:
        print(
            f"Attachment: {attachment['filename']} ({attachment['content_type']}, {attachment['size']} bytes)"
        )
    for problem in message["parse_problems"]:
        print(f"Problem: {problem}")
    print()
    print(message["body_text"])
