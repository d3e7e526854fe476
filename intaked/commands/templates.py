"""``intaked templates preview``: a mail template rendered for one ticket, as it would be sent.

The acknowledgement and the reply notice are rendered as intaked renders them for the ticket.
The other notices depend on an event (a deadline, an extension, an update's text...): they are
rendered with the ticket's own fields and marked example values for the event's, so an operator
changing a template (``acknowledgements.templates_dir``) sees it filled in and learns at once of
a variable the template names but intaked does not give (the error names it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from jinja2 import TemplateError

from intaked.commands.shared import EXIT_NOT_FOUND, EXIT_USAGE, open_engine
from intaked.config import Settings
from intaked.outbound.compose import CHANNEL_NAMES, render_ack, render_notice
from intaked.store.migrate import current_revision
from intaked.store.queries import ticket_detail

ACKS = ("ack", "reply_notice")
EXAMPLE = "（範例 example）"


def _event_values(ticket: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per notice, the context beyond the ticket: what its event would give, as examples."""
    when = "2026-12-10 18:00 CST " + EXAMPLE
    zh, en = CHANNEL_NAMES.get(ticket["channel"] or "email", (ticket["channel"], ticket["channel"]))
    return {
        "resolved": {"note": EXAMPLE, "close_local": when},
        "sla_warning": {"target": "resolution", "due_local": when, "team": ticket["team"] or "-"},
        "sla_breach": {"target": "resolution", "due_local": when, "team": ticket["team"] or "-"},
        "extension": {
            "until_zh": when,
            "until_en": when,
            "previous_zh": when,
            "previous_en": when,
            "reason": EXAMPLE,
        },
        "escalation": {
            "to": "team-lead@example.com",
            "by": "operator",
            "count": 1,
            "reason": EXAMPLE,
            "commitment_zh": when,
            "commitment_en": when,
        },
        "survey": {"answer_by_local": when},
        "survey_clarify": {},
        "team_new_ticket": {
            "team": ticket["team"] or "-",
            "channel_zh": zh,
            "channel_en": en,
            "first_lines": EXAMPLE,
            "suggested_priority": ticket["suggested_priority"],
        },
        "incident_update": {
            "incident": {"number": ticket["number"], "subject": ticket["subject"]},
            "text": EXAMPLE,
            "at_local": when,
        },
    }


NOTICES = (
    "resolved",
    "sla_warning",
    "sla_breach",
    "extension",
    "escalation",
    "survey",
    "survey_clarify",
    "team_new_ticket",
    "incident_update",
)


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    templates = sub.add_parser("templates", help="mail templates").add_subparsers(
        dest="templates_command", required=True
    )
    preview = templates.add_parser("preview", parents=[config_parent], help="render a template for a ticket")
    preview.add_argument("template", choices=[*ACKS, *NOTICES])
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
    templates_dir = settings.acknowledgements.templates_dir
    try:
        if args.template in ACKS:
            rendered = render_ack(
                {k: ticket[k] for k in ("number", "subject", "status", "priority", "channel")},
                requester_name=ticket["requester_name"],
                received_at=dt.datetime.fromisoformat(ticket["created_at"]),
                timezone=settings.acknowledgements.timezone,
                templates_dir=templates_dir,
                template=args.template,
            )
        else:
            fields = (
                "number",
                "subject",
                "priority",
                "status",
                "requester_name",
                "requester_email",
                "requester_phone",
            )
            context = {
                "ticket": {k: ticket[k] for k in fields},
                "requester_name": ticket["requester_name"],
                **_event_values(ticket)[args.template],
            }
            rendered = render_notice(args.template, context, templates_dir)
    except TemplateError as exc:
        print(f"template {args.template}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"To: {ticket['requester_email'] or '-'}")
    print(f"Subject: {rendered['subject']}\n")
    print(rendered["text"])
    if args.html and rendered.get("html"):
        print("--- text/html\n" + rendered["html"])
    return 0
