"""``intaked imap status``: where each configured IMAP mailbox stands (UID, backlog, last poll)
and which node pulls it (the holder of its lease, and until when)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from intaked.channels.imapstate import mailbox_status
from intaked.commands.shared import iso, open_engine, print_json
from intaked.config import Settings
from intaked.store.migrate import current_revision
from intaked.store.types import utcnow


def add_parser(sub: Any, config_parent: argparse.ArgumentParser) -> None:
    imap = sub.add_parser("imap", help="IMAP mailboxes").add_subparsers(dest="imap_command", required=True)
    status_cmd = imap.add_parser("status", parents=[config_parent], help="where each mailbox stands")
    status_cmd.add_argument("--json", action="store_true", help="JSON output")


def run(settings: Settings, args: argparse.Namespace) -> int:
    rows = _mailboxes(settings)
    if args.json:
        print_json(rows)
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
        print(f"  {_lease_line(row)}")
        if row["last_error"]:
            print(f"  last error ({row['last_error_at']}): {row['last_error']}")
    return 0


def _mailboxes(settings: Settings) -> list[dict[str, Any]]:
    """Each configured mailbox with what the store knows of it."""
    engine = open_engine(settings)
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
                "last_poll_at": iso(state.get("last_poll_at")),
                "last_error": state.get("last_error"),
                "last_error_at": iso(state.get("last_error_at")),
                "lease_holder": state.get("lease_holder"),
                "lease_expires_at": iso(state.get("lease_expires_at")),
                "lease_fence": state.get("lease_fence"),
                "lease_expired": _expired(state.get("lease_holder"), state.get("lease_expires_at")),
            }
        )
    return rows


def _expired(holder: str | None, until: dt.datetime | None) -> bool | None:
    """Whether the holder's lease ran out (it is anyone's to take); None when nobody holds it."""
    if holder is None:
        return None
    return until is None or until <= utcnow()


def _lease_line(row: dict[str, Any]) -> str:
    """Who pulls the mailbox: ``pulled by HOLDER until T (fence N)``, or that nobody does."""
    if row["lease_holder"] is None:
        return "pulled by: nobody (no daemon holds its lease)"
    ran_out = " (ran out: the next node to look takes it over)" if row["lease_expired"] else ""
    until = row["lease_expires_at"]
    return f"pulled by {row['lease_holder']} until {until}{ran_out} (fence {row['lease_fence']})"
