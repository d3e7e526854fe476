"""``intaked rules test``: which routing rules match a mail or a text, and why; whether the
suggestion is trusted; who the requester is in the directory.

Exit codes as in :mod:`intaked.commands.shared`: 0 done; 1 the file does not exist; 2 wrong usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from intaked.commands.directory import person_json, person_line
from intaked.commands.shared import EXIT_NOT_FOUND, EXIT_USAGE, print_json
from intaked.config import Settings
from intaked.parsing import ParsedMessage, parse_message
from intaked.parsing.model import Address
from intaked.routing.decide import RoutedReport, as_channel, route_call, route_mail
from intaked.routing.rules import FIELDS


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    rules = sub.add_parser("rules", help="routing rules").add_subparsers(dest="rules_command", required=True)
    test = rules.add_parser(
        "test",
        parents=[config_parent],
        help="which rules match a mail (FILE.eml) or a text, and why",
        description="Show which routing rules match, the result per field, whether the suggestion "
        "is trusted, and the requester's directory entry. Give FILE.eml or --text.",
    )
    test.add_argument("file", nargs="?", metavar="FILE.eml", help="a raw mail")
    test.add_argument(
        "--text", help="a report's text instead of a mail (the body, or the hotline transcript)"
    )
    test.add_argument("--subject", default="", help="with --text: the subject")
    test.add_argument("--channel", help='with --text: "email" (default) or "phone"')
    test.add_argument(
        "--hotline-choice", help="with --text: the hotline menu digit (implies --channel phone)"
    )
    test.add_argument(
        "--from",
        dest="sender",
        help="the sender: envelope sender of FILE, or --text's address or caller number",
    )
    test.add_argument("--to", action="append", default=[], help="a recipient address (repeatable)")
    test.add_argument("--json", action="store_true", help="JSON output")


def _usage(message: str) -> int:
    print(f"intaked rules test: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.file and args.text is not None:
        return _usage("give FILE.eml or --text, not both")
    if not args.file and args.text is None:
        return _usage("give FILE.eml or --text")
    if args.file and (args.subject or args.channel or args.hotline_choice):
        return _usage("--subject, --channel and --hotline-choice go with --text")
    if args.file:
        path = Path(args.file)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            print(f"intaked: no such file: {path}", file=sys.stderr)
            return EXIT_NOT_FOUND
        except OSError as exc:
            print(f"intaked: cannot read {path}: {exc}", file=sys.stderr)
            return EXIT_NOT_FOUND
        parsed = parse_message(raw)
        report = route_mail(settings, parsed, args.sender, args.to, explain=True)
    else:
        channel = (args.channel or ("phone" if args.hotline_choice else "email")).lower()
        if channel == "phone":
            report = route_call(
                settings,
                args.sender,
                args.hotline_choice,
                transcript=f"{args.subject}\n{args.text}" if args.subject else args.text,
                recipient=args.to[0] if args.to else None,
                explain=True,
            )
        else:
            parsed = ParsedMessage(
                subject=args.subject,
                sender=Address("", args.sender) if args.sender else None,
                to=[Address("", a) for a in args.to],
                body_text=args.text,
            )
            report = route_mail(settings, parsed, args.sender, [], explain=True)
            if channel != "email":
                report = as_channel(settings, report, channel)
    if args.json:
        print_json(_report_json(report))
    else:
        _print_report(settings, report)
    return 0


def _report_json(report: RoutedReport) -> dict[str, Any]:
    facts = report.facts
    return {
        "facts": {
            "channel": facts.channel,
            "sender": facts.sender,
            "recipients": list(facts.recipients),
            "hotline_choice": facts.hotline_choice,
            "subject": facts.subject,
            "department": facts.department,
            "site": facts.site,
        },
        "rules": [
            {"rule": v.rule, "matched": v.matched, "reasons": list(v.reasons)} for v in report.result.verdicts
        ],
        "result": {
            name: {"value": getattr(report.result, name), "rule": report.result.set_by.get(name)}
            for name in FIELDS
        },
        "suggested_by": report.suggested_by,
        "trusted": report.suggestion_trusted,
        "source_trusted": report.trust.trusted,
        "trust_reason": report.trust.reason,
        "directory": person_json(report.person),
    }


def _print_report(settings: Settings, report: RoutedReport) -> None:
    facts = report.facts
    print(f"channel: {facts.channel}   sender: {facts.sender or '-'}   subject: {facts.subject or '-'}")
    if not report.result.verdicts:
        print("rules: none configured ([[routing.rules]]): nothing is routed")
    else:
        print("rules (in order; each field comes from the first matching rule that sets it):")
        for verdict in report.result.verdicts:
            mark = "MATCH" if verdict.matched else "no   "
            sets = [f for f, rule in report.result.set_by.items() if rule == verdict.rule]
            tail = f"  -> sets {', '.join(sets)}" if sets else ""
            print(f"  {mark} {verdict.rule}: {'; '.join(verdict.reasons)}{tail}")
    print("result:")
    for name in FIELDS:
        value = getattr(report.result, name)
        rule = report.result.set_by.get(name)
        print(f"  {name:<19} {value or '-':<20} {f'(rule {rule})' if rule else '(no rule)'}")
    if report.result.suggested_priority is None:
        print(f"trusted: no (nothing suggested); the source: {report.trust.reason}")
    elif report.suggestion_trusted:
        print(f"trusted: yes: {report.trust.reason}")
    else:
        print(f"trusted: NO: {report.trust.reason}")
    person = report.person
    if not settings.directory.path:
        print("directory: not configured ([directory] path)")
    elif person is None:
        print("directory: no entry for the sender")
    else:
        print(f"directory: {person_line(person)}")
