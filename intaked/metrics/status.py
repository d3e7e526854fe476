"""The one line systemd shows as the daemon's status (``systemctl status``, the notify protocol's
STATUS=): the ledger backlog (items captured, not yet tickets), quarantined items, outbox rows
waiting or being sent, and how each IMAP mailbox stands. Read with the same queries as the
metrics (intaked/metrics/figures.py), only the few the line needs: it is read every few seconds."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from intaked.metrics.figures import (
    UNFINISHED_ITEM_STATES,
    UNSENT_OUTBOX_STATES,
    MailboxPoll,
    read_mailboxes,
    waiting,
)
from intaked.store.engine import read_snapshot
from intaked.store.models import inbound_item_table, outbox_table
from intaked.store.types import utcnow


def status_line(engine: Engine, mailboxes: Sequence[str]) -> str:
    """E.g. ``3 items queued, 0 quarantined, 0 outbox pending, IMAP ok``."""
    items, out = inbound_item_table, outbox_table
    with read_snapshot(engine).connect() as conn:
        queued, _ = waiting(conn, items, items.c.received_at, items.c.state.in_(UNFINISHED_ITEM_STATES))
        quarantined, _ = waiting(conn, items, items.c.received_at, items.c.state == "quarantined")
        unsent, _ = waiting(conn, out, out.c.created_at, out.c.state.in_(UNSENT_OUTBOX_STATES))
        polls = {poll.name: poll for poll in read_mailboxes(conn, utcnow())}
    parts = [f"{queued} items queued", f"{quarantined} quarantined", f"{unsent} outbox pending"]
    if mailboxes:
        parts.append(_imap_status(mailboxes, polls))
    return ", ".join(parts)


def _imap_status(mailboxes: Sequence[str], polls: dict[str, MailboxPoll]) -> str:
    """``IMAP ok`` when every mailbox's last poll succeeded, else each mailbox's state."""
    states: dict[str, str] = {}
    for name in mailboxes:
        poll = polls.get(name)
        if poll is not None and poll.last_error:
            states[name] = "failing"
        elif poll is None or poll.poll_age_seconds is None:
            states[name] = "connecting"
        else:
            states[name] = "ok"
    if all(state == "ok" for state in states.values()):
        return "IMAP ok"
    return "IMAP " + ", ".join(f"{name} {state}" for name, state in states.items())
