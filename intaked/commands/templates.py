"""``intaked templates preview``: a mail template rendered for one ticket, as it would be sent."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from intaked.commands.shared import EXIT_NOT_FOUND, open_engine
from intaked.config import Settings
from intaked.outbound.compose import render_ack
from intaked.store.migrate import current_revision
from intaked.store.queries import ticket_detail


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    templates = sub.add_parser("templates", help="mail templates").add_subparsers(
        dest="templates_command", required=True
    )
    preview = templates.add_parser("preview", parents=[config_parent], help="render a template for a ticket")
    preview.add_argument("template", choices=["ack", "reply_notice"])
    preview.add_argument("--ticket", required=True, metavar="NUMBER")
    preview.add_argument("--html", action="store_true", help="print the HTML part too")


def run(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_engine(settings)
    try:
        ticket = ticket_detail(engine, args.ticket) if current_revision(engine) else None
    finally:
        engine.dispose()
    if ticket is None:
        print(f"no ticket {args.ticket}", file=sys.stderr)
        return EXIT_NOT_FOUND
    rendered = render_ack(
        {k: ticket[k] for k in ("number", "subject", "status", "priority", "channel")},
        requester_name=ticket["requester_name"],
        received_at=dt.datetime.fromisoformat(ticket["created_at"]),
        timezone=settings.acknowledgements.timezone,
        templates_dir=settings.acknowledgements.templates_dir,
        template=args.template,
    )
    print(f"To: {ticket['requester_email'] or '-'}")
    print(f"Subject: {rendered['subject']}\n")
    print(rendered["text"])
    if args.html and rendered.get("html"):
        print("--- text/html\n" + rendered["html"])
    return 0
