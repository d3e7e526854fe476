"""The ``intaked`` command: the daemon and the operator's tools.

Exit codes: 0 success; 1 a looked-up thing does not exist; 2 wrong usage; 69 the store is
unreachable or on the wrong schema; 78 the configuration is invalid (sysexits EX_CONFIG).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from intaked import __version__
from intaked.config import ConfigError, Settings, load_settings, masked_dump
from intaked.logs import configure_logging
from intaked.store.engine import engine_for
from intaked.store.migrate import SchemaError, current_revision, head_revision, upgrade

EXIT_NOT_FOUND = 1
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78
DAEMON_COMMAND = "run"
PRIVATE_UMASK = 0o077


class CommandGroup(Protocol):
    """A module of operators' commands (``intaked calendar``, ``intaked oncall``, ...)."""

    @property
    def COMMANDS(self) -> Sequence[str]: ...  # the modules' constant, read-only here

    def add_parsers(self, sub: Any, config_parent: argparse.ArgumentParser) -> None: ...

    def run(self, settings: Settings, args: argparse.Namespace) -> int: ...


def _command_groups() -> list[CommandGroup]:
    """The modules of the commands beyond the core ones, imported when a command needs them:
    they bring the SLA, paging, routing and parsing code, which `intaked run` does not need in
    its front process, and a restarted daemon should be taking mail again within a second."""
    from intaked import worktime_cli
    from intaked.hotline import cli as calls_cli
    from intaked.paging import cli as oncall_cli
    from intaked.paging import page_cli
    from intaked.routing import cli as routing_cli

    return [worktime_cli, page_cli, oncall_cli, routing_cli, calls_cli]


def _runs_the_daemon(argv: Sequence[str]) -> bool:
    """Whether the command line is ``intaked run ...`` (an option before it, ``--help`` or
    ``--version``, is about the whole command: it gets the full parser)."""
    return bool(argv) and argv[0] == DAEMON_COMMAND


def _parser(*, with_command_groups: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="intaked", description="IT helpdesk intake daemon")
    parser.add_argument("--version", action="version", version=f"intaked {__version__}")
    config_parent = argparse.ArgumentParser(add_help=False)
    config_parent.add_argument("--config", metavar="PATH", help="TOML config file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser(DAEMON_COMMAND, parents=[config_parent], help="run the daemon in the foreground")
    sub.add_parser("check-config", parents=[config_parent], help="validate and print the settings")

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", parents=[config_parent], help="apply pending migrations")
    db.add_parser("current", parents=[config_parent], help="print the schema revision")

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

    imap = sub.add_parser("imap", help="IMAP mailboxes").add_subparsers(dest="imap_command", required=True)
    status_cmd = imap.add_parser("status", parents=[config_parent], help="where each mailbox stands")
    status_cmd.add_argument("--json", action="store_true", help="JSON output")

    templates = sub.add_parser("templates", help="mail templates").add_subparsers(
        dest="templates_command", required=True
    )
    preview = templates.add_parser("preview", parents=[config_parent], help="render a template for a ticket")
    preview.add_argument("template", choices=["ack", "reply_notice"])
    preview.add_argument("--ticket", required=True, metavar="NUMBER")
    preview.add_argument("--html", action="store_true", help="print the HTML part too")

    outbox = sub.add_parser("outbox", help="queued side effects").add_subparsers(
        dest="outbox_command", required=True
    )
    outbox_list = outbox.add_parser("list", parents=[config_parent], help="the newest outbox rows")
    outbox_list.add_argument("--state", choices=["pending", "sending", "sent", "failed", "cancelled"])
    outbox_list.add_argument("--limit", type=int, default=50)
    outbox_list.add_argument("--json", action="store_true", help="JSON output")

    reprocess = sub.add_parser(
        "reprocess", parents=[config_parent], help="re-parse a ticket's stored raw mail (after a parser fix)"
    )
    reprocess.add_argument("number")
    if with_command_groups:
        for group in _command_groups():
            group.add_parsers(sub, config_parent)
    return parser


def _engine(settings: Settings) -> Engine:
    return engine_for(settings, pool_size=2)


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def _cmd_check_config(settings: Settings, source: str) -> int:
    print(f"# configuration from {source}: valid")
    sender = settings.outbound_mail.sender
    print(f"# From header: {sender.header_value()}  ({sender.readable()})")
    _print_json(masked_dump(settings))
    if not settings.smtp_intake.recipients and settings.smtp_intake.enabled:
        print("# note: smtp_intake.recipients is empty: every recipient is accepted", file=sys.stderr)
    from intaked.routing import cli as routing_cli

    for note in routing_cli.config_notes(settings):
        print(f"# note: {note}", file=sys.stderr)
    from intaked.paging.engine import missing_policies, missing_policy_reason

    for priority in missing_policies(settings):
        print(f"# warning: {missing_policy_reason(priority)}", file=sys.stderr)
    return 0


def _cmd_db(settings: Settings, command: str) -> int:
    engine = _engine(settings)
    try:
        if command == "upgrade":
            before, after = upgrade(engine)
            print(
                f"schema upgraded: {before or '(empty)'} -> {after}"
                if before != after
                else f"schema already current: {after}"
            )
        else:
            current = current_revision(engine)
            head = head_revision()
            print(f"{current or '(empty)'}" + ("" if current == head else f" (this intaked needs {head})"))
    finally:
        engine.dispose()
    return 0


def _cmd_tickets(settings: Settings, args: argparse.Namespace) -> int:
    from intaked.store.queries import list_tickets, ticket_detail

    engine = _engine(settings)
    try:
        if current_revision(engine) is None:
            print(
                "the database has no tickets yet (schema not created: run `intaked db upgrade`)",
                file=sys.stderr,
            )
            if args.tickets_command == "list":
                if args.json:
                    _print_json([])
                return 0
            return EXIT_NOT_FOUND
        if args.tickets_command == "list":
            rows = list_tickets(engine, limit=args.limit, status=args.status)
            if args.json:
                _print_json(rows)
            else:
                _print_ticket_table(rows)
            return 0
        detail = ticket_detail(engine, args.number)
        if detail is None:
            print(f"no ticket {args.number}", file=sys.stderr)
            return EXIT_NOT_FOUND
        if args.json:
            _print_json(detail)
        else:
            _print_ticket_detail(detail)
        return 0
    finally:
        engine.dispose()


def _cmd_imap_status(settings: Settings, as_json: bool) -> int:
    from intaked.channels.imap import mailbox_status

    engine = _engine(settings)
    try:
        stored = mailbox_status(engine) if current_revision(engine) else {}
    finally:
        engine.dispose()
    rows = []
    for mailbox in settings.imap:
        state = stored.get(mailbox.name, {})
        rows.append(
            {
                "name": mailbox.name,
                "enabled": mailbox.enabled,
                "server": f"{mailbox.username}@{mailbox.host}:{mailbox.effective_port}/{mailbox.folder}",
                "uidvalidity": state.get("uidvalidity"),
                "last_uid": state.get("last_uid"),
                "backlog": state.get("backlog"),
                "last_poll_at": _iso(state.get("last_poll_at")),
                "last_error": state.get("last_error"),
                "last_error_at": _iso(state.get("last_error_at")),
            }
        )
    if as_json:
        _print_json(rows)
        return 0
    if not rows:
        print("no IMAP mailbox is configured ([[imap]] in the configuration)")
        return 0
    for row in rows:
        print(f"{row['name']}: {row['server']}{'' if row['enabled'] else ' (disabled)'}")
        print(
            f"  UIDVALIDITY {row['uidvalidity'] or '-'}, last committed UID {row['last_uid'] or '-'}, "
            f"backlog {row['backlog'] if row['backlog'] is not None else '-'}"
        )
        print(f"  last successful poll: {row['last_poll_at'] or 'never'}")
        if row["last_error"]:
            print(f"  last error ({row['last_error_at']}): {row['last_error']}")
    return 0


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _cmd_reprocess(settings: Settings, number: str) -> int:
    from intaked.intake.reprocess import TicketNotFound, describe, reprocess_ticket

    engine = _engine(settings)
    try:
        results = reprocess_ticket(engine, number)
    except TicketNotFound:
        print(f"no ticket {number}", file=sys.stderr)
        return EXIT_NOT_FOUND
    finally:
        engine.dispose()
    print(f"{number}: re-parsed {len(results)} message(s)")
    print(describe(results))
    return 0


def _cmd_preview(settings: Settings, args: argparse.Namespace) -> int:
    from intaked.outbound.compose import render_ack
    from intaked.store.queries import ticket_detail

    engine = _engine(settings)
    try:
        ticket = ticket_detail(engine, args.ticket) if current_revision(engine) else None
    finally:
        engine.dispose()
    if ticket is None:
        print(f"no ticket {args.ticket}", file=sys.stderr)
        return EXIT_NOT_FOUND
    import datetime as dt

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


def _cmd_outbox_list(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from intaked.store.models import outbox_table

    engine = _engine(settings)
    try:
        if current_revision(engine) is None:
            rows: list[dict[str, Any]] = []
        else:
            query = select(outbox_table).order_by(outbox_table.c.id.desc()).limit(args.limit)
            if args.state:
                query = query.where(outbox_table.c.state == args.state)
            with engine.connect() as conn:
                rows = [
                    {k: _iso(v) for k, v in row._mapping.items() if k != "payload"}
                    for row in conn.execute(query)
                ]
    finally:
        engine.dispose()
    if args.json:
        _print_json(rows)
        return 0
    print(f"{'ID':>6} {'STATE':<9} {'PURPOSE':<13} {'TRIES':>5} {'RECIPIENT':<32} LAST ERROR")
    for row in rows:
        print(
            f"{row['id']:>6} {row['state']:<9} {row['purpose']:<13} {row['attempts']:>5} "
            f"{row['recipient']:<32} {row['last_error'] or ''}"
        )
    return 0


def _print_ticket_table(rows: Sequence[dict[str, Any]]) -> None:
    print(f"{'NUMBER':<18} {'STATUS':<9} {'PRI':<4} {'CREATED (UTC)':<20} {'REQUESTER':<32} SUBJECT")
    for row in rows:
        requester = row["requester_email"] or row["requester_phone"] or ""
        print(
            f"{row['number']:<18} {row['status']:<9} {row['priority'] or '-':<4} "
            f"{row['created_at'][:19]:<20} {requester:<32} {row['subject'] or '(no subject)'}"
        )


def _print_ticket_detail(ticket: dict[str, Any]) -> None:
    for key in (
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
    ):
        print(f"{key + ':':<17} {ticket[key] if ticket[key] is not None else '-'}")
    for message in ticket["messages"]:
        print(
            f"\n--- message {message['id']} ({message['direction']}, {message['channel']}) "
            f"from {message['sender'] or '-'} at {message['created_at']}"
        )
        print(f"Subject: {message['subject']}")
        if message["header_message_id"]:
            print(f"Message-ID: <{message['header_message_id']}>")
        for attachment in message["attachments"]:
            print(
                f"Attachment: {attachment['filename']} ({attachment['content_type']}, "
                f"{attachment['size']} bytes)"
            )
        for problem in message["parse_problems"]:
            print(f"Problem: {problem}")
        print()
        print(message["body_text"])
    print("\n--- events")
    for event in ticket["events"]:
        what = event["detail"] or event["after"] or ""
        print(f"{event['at']}  {event['actor']:<10} {event['kind']:<16} {what}")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line. What intaked writes (the SQLite database and its -wal/-shm files, the
    state directory, lock files; also in the processes it starts) is its owner's alone: 0600 files,
    0700 directories. Everything a command prints goes through intaked/terminal.py, so text from
    mail or callers never reaches the operator's terminal as control sequences."""
    previous_umask = os.umask(PRIVATE_UMASK)
    try:
        words = sys.argv[1:] if argv is None else argv
        if _runs_the_daemon(words):
            return _main(words)
        from intaked.terminal import safe_output

        with safe_output():
            return _main(words)
    finally:
        os.umask(previous_umask)  # the same process may go on (tests call main)


def _main(words: Sequence[str]) -> int:
    args = _parser(with_command_groups=not _runs_the_daemon(words)).parse_args(words)
    try:
        settings, path = load_settings(args.config)
    except ConfigError as exc:
        print(f"intaked: invalid configuration:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        if args.command == "check-config":
            return _cmd_check_config(settings, str(path) if path else "built-in defaults")
        if args.command == DAEMON_COMMAND:
            from intaked.daemon import run_daemon
            from intaked.memory import tune_allocator

            tune_allocator()
            return asyncio.run(run_daemon(settings))
        if args.command == "db":
            return _cmd_db(settings, args.db_command)
        if args.command == "tickets":
            return _cmd_tickets(settings, args)
        if args.command == "imap":
            return _cmd_imap_status(settings, args.json)
        if args.command == "reprocess":
            return _cmd_reprocess(settings, args.number)
        if args.command == "templates":
            return _cmd_preview(settings, args)
        if args.command == "outbox":
            return _cmd_outbox_list(settings, args)
        for group in _command_groups():
            if args.command in group.COMMANDS:
                return group.run(settings, args)
    except SchemaError as exc:
        print(f"intaked: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except SQLAlchemyError as exc:
        print(f"intaked: the ticket store is unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    raise AssertionError(f"unhandled command {args.command}")  # pragma: no cover
