"""What the alarm watches, read from the store in one read-only connection.

Each :class:`Condition` says whether its part of the pipeline is failing now and, where the store
knows it, since when (the oldest waiting row; a mailbox's last good poll). The monitor
(intaked/health/alarm.py) compares that with the condition's threshold:

- ``ledger``: the oldest captured item not yet filed as a ticket (``health.ledger_stall_seconds``);
- ``outbox``: the oldest unsent outbox row, Twilio's failing rows aside (``outbox_stall_seconds``);
- ``twilio``: Twilio rows (SMS, calls, cancels, recordings) put back with an error, i.e. Twilio
  refusing or unreachable, since the oldest of them was queued (``outbox_stall_seconds``);
- ``mailbox:<name>``: an enabled IMAP mailbox whose last pass failed, since its last good poll
  (``mailbox_failing_seconds``);
- ``workers:<node>``: the ``workers`` check of ``/readyz`` failing for this node
  (``worker_silent_seconds``; since when, only the front watching it knows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, and_, not_, select

from intaked.config import Settings
from intaked.metrics.figures import UNFINISHED_ITEM_STATES, UNSENT_OUTBOX_STATES, read_workers, waiting
from intaked.metrics.readiness import expected_roles, workers_check
from intaked.store.engine import read_snapshot
from intaked.store.liveness import node_name
from intaked.store.models import imap_mailbox_table, inbound_item_table, outbox_table
from intaked.store.types import utcnow

#: The outbox kinds Twilio carries.
TWILIO_KINDS = ("sms", "call", "call_cancel", "recording")


@dataclass(frozen=True, slots=True)
class Condition:
    """One watched part: ``failing`` now, ``since`` when (None: the store does not say), for
    longer than ``threshold`` seconds is a stall. ``what`` names it in the alarm, ``detail`` is
    what was seen, ``hint`` what to check."""

    key: str
    what: str
    failing: bool
    since: dt.datetime | None
    threshold: float
    detail: str = ""
    hint: str = ""


def read_conditions(settings: Settings, engine: Engine, now: dt.datetime | None = None) -> list[Condition]:
    """Every condition this front watches (blocking: call it off the event loop)."""
    now = now or utcnow()
    with read_snapshot(engine).connect() as conn:
        found = [
            _ledger(conn, settings),
            _outbox(conn, settings),
            _twilio(conn, settings),
            *_mailboxes(conn, settings),
            _workers(conn, settings, now),
        ]
    return found


def _ledger(conn: Connection, settings: Settings) -> Condition:
    items = inbound_item_table
    count, oldest = waiting(conn, items, items.c.received_at, items.c.state.in_(UNFINISHED_ITEM_STATES))
    return Condition(
        "ledger",
        "the intake ledger",
        oldest is not None,
        oldest,
        settings.health.ledger_stall_seconds,
        f"{count} captured item(s) not yet filed as tickets, the oldest received {_iso(oldest)}",
        "the back office (intaked.backoffice intake process): is it running, its log "
        "(back_office_*, intake_*), `intaked status`, quarantined items (`intaked reprocess`)",
    )


def _twilio_failing() -> ColumnElement[bool]:
    return and_(
        outbox_table.c.kind.in_(TWILIO_KINDS),
        outbox_table.c.state == "pending",
        outbox_table.c.last_error.is_not(None),
    )


def _outbox(conn: Connection, settings: Settings) -> Condition:
    out = outbox_table
    where = and_(out.c.state.in_(UNSENT_OUTBOX_STATES), not_(_twilio_failing()))
    count, oldest = waiting(conn, out, out.c.created_at, where)
    return Condition(
        "outbox",
        "the outbox",
        oldest is not None,
        oldest,
        settings.health.outbox_stall_seconds,
        f"{count} outbox row(s) not yet sent, the oldest queued {_iso(oldest)}",
        "the outbox sender (intaked.backoffice outbox process), the mail relay ([outbound_mail]): "
        "`intaked outbox list`, its log (outbox_*)",
    )


def _twilio(conn: Connection, settings: Settings) -> Condition:
    count, oldest = waiting(conn, outbox_table, outbox_table.c.created_at, _twilio_failing())
    error = ""
    if oldest is not None:
        query = select(outbox_table.c.last_error).where(_twilio_failing()).order_by(outbox_table.c.created_at)
        error = str(conn.execute(query.limit(1)).scalar_one_or_none() or "")[:300]
    return Condition(
        "twilio",
        "Twilio",
        oldest is not None,
        oldest,
        settings.health.outbox_stall_seconds,
        f"{count} SMS/call row(s) put back after errors, the oldest queued {_iso(oldest)}; "
        f"last error: {error}",
        "Twilio's status page, the network to api.twilio.com, [twilio] credentials; `intaked outbox list`",
    )


def _mailboxes(conn: Connection, settings: Settings) -> list[Condition]:
    table = imap_mailbox_table
    rows = {
        row.name: row for row in conn.execute(select(table.c.name, table.c.last_poll_at, table.c.last_error))
    }
    found: list[Condition] = []
    for mailbox in settings.imap:
        if not mailbox.enabled:
            continue
        row = rows.get(mailbox.name)
        error = row.last_error if row is not None else None
        last_poll = row.last_poll_at if row is not None else None
        found.append(
            Condition(
                f"mailbox:{mailbox.name}",
                f"IMAP mailbox {mailbox.name}",
                bool(error),
                last_poll,
                settings.health.mailbox_failing_seconds,
                f"last good poll {_iso(last_poll)}; last error: {error or ''}"[:500],
                f"the IMAP server {mailbox.host}, the login of {mailbox.username}: `intaked imap status`",
            )
        )
    return found


def _workers(conn: Connection, settings: Settings, now: dt.datetime) -> Condition:
    node = settings.daemon.node_name or node_name()
    check = workers_check(expected_roles(settings), node, read_workers(conn, now))
    return Condition(
        f"workers:{node}",
        f"the workers of node {node}",
        not check.passed,
        None,
        settings.health.worker_silent_seconds,
        check.detail,
        "the back office and outbox processes of this node: `intaked status`, the log "
        "(back_office_died, back_office_start_failed), a process stopped or swapping",
    )


def _iso(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "never"
