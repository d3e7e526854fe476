"""What people do to a ticket's commitment to its requester (seed 003; docs/service-levels.md,
"Commitments, extensions and escalations"):

- :func:`commit`: the first commitment (首次承諾時間), only before work started;
- :func:`extend`: an extension (延時), a later commitment, the requester told;
- :func:`escalate`: an escalation (升級), a team's lead or a person told, maybe a new commitment.

Each runs in one transaction on the locked ticket row: first brought up to date like the SLA
tracker would (so a tool's pending write is counted before), then the change, its event and its
mails in the outbox (intaked/tickets/commitment_mails.py). How the commitments follow the
standard time by themselves is intaked/sla/commitments.py's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Connection, Engine, update

from intaked.config import Settings
from intaked.outbound.outbox import enqueue
from intaked.sla.commitments import commitment_event
from intaked.sla.context import SlaContext
from intaked.sla.tracker import apply_changes
from intaked.store.models import ticket_table
from intaked.store.types import utcnow
from intaked.tickets.commitment_mails import Recipient, escalation_notice, extension_notice
from intaked.tickets.events import TicketEvent, record_events
from intaked.tickets.lifecycle import InvalidChange, locked_row

_t = ticket_table
log = structlog.get_logger(__name__)

#: What a change makes of the locked row: its column values, events and outbox mails.
Change = tuple[dict[str, Any], list[TicketEvent], list[dict[str, Any]]]


@dataclass(frozen=True)
class CommitmentChanged:
    """A ticket's commitments after a change, and who was mailed about it."""

    number: str
    standard_due_at: dt.datetime | None
    first_commitment_at: dt.datetime | None
    commitment_at: dt.datetime | None
    extension_count: int
    escalation_count: int
    mailed: tuple[str, ...]


def local_zone(settings: Settings) -> ZoneInfo:
    """The zone times of commitments are read and shown in (``tickets.timezone``)."""
    return ZoneInfo(settings.tickets.timezone)


def shown(value: dt.datetime | None, settings: Settings) -> str:
    """``value`` in ISO 8601 in ``tickets.timezone`` (as commands and errors show it)."""
    return value.astimezone(local_zone(settings)).isoformat() if value is not None else "-"


def _changing(
    engine: Engine,
    ctx: SlaContext,
    number: str,
    now: dt.datetime,
    change: Callable[[Connection, Any], Change],
) -> CommitmentChanged:
    """Apply ``change`` to ticket ``number`` (locked and brought up to date first) in one transaction."""
    with engine.begin() as conn:
        row = _up_to_date(conn, ctx, number, now)
        values, events, mails = change(conn, row)
        conn.execute(update(_t).where(_t.c.id == row["id"]).values(**values, updated_at=now))
        record_events(conn, events)
        enqueue(conn, mails, now)
        row = locked_row(conn, number)
    log.info(events[0]["kind"], ticket=number, actor=events[0]["actor"], mailed=len(mails))
    return CommitmentChanged(
        number=number,
        standard_due_at=row["standard_due_at"],
        first_commitment_at=row["first_commitment_at"],
        commitment_at=row["commitment_at"],
        extension_count=row["extension_count"],
        escalation_count=row["escalation_count"],
        mailed=tuple(mail["recipient"] for mail in mails),
    )


def _up_to_date(conn: Connection, ctx: SlaContext, number: str, now: dt.datetime) -> Any:
    """The locked row of ticket ``number`` with what the SLA tracker would change written first."""
    row = locked_row(conn, number)
    values, events = apply_changes(ctx, row, now)
    conn.execute(update(_t).where(_t.c.id == row["id"]).values(**values))
    record_events(conn, events)
    return locked_row(conn, number)


def _still_open(row: Any) -> None:
    status = row["status"]
    if status == "spam":
        raise InvalidChange(f"{row['number']} is in the spam quarantine: release it first")
    if status in ("resolved", "closed"):
        raise InvalidChange(f"{row['number']} is already {status}")


def _in_future(settings: Settings, at: dt.datetime, now: dt.datetime) -> None:
    if at <= now:
        raise InvalidChange(f"{shown(at, settings)} is not in the future")


def _later(settings: Settings, row: Any, until: dt.datetime, now: dt.datetime) -> None:
    """``until`` must be later than the current commitment (and than now)."""
    current = row["commitment_at"]
    if current is not None and until <= current:
        raise InvalidChange(
            f"the new commitment {shown(until, settings)} must be later than the current one,"
            f" {shown(current, settings)}"
        )
    _in_future(settings, until, now)


def commit(
    engine: Engine,
    ctx: SlaContext,
    number: str,
    *,
    at: dt.datetime,
    by: str = "operator",
    now: dt.datetime | None = None,
) -> CommitmentChanged:
    """Commit to ``at`` as the ticket's first (and current) commitment; refused once work started
    (``first_response_at`` set: 執行後即不可更改)."""
    now = now or utcnow()
    settings = ctx.settings

    def change(conn: Connection, row: Any) -> Change:
        _still_open(row)
        if row["first_response_at"] is not None:
            raise InvalidChange(
                f"{number}: work started at {shown(row['first_response_at'], settings)}, so its first"
                " commitment can no longer change (use `intaked ticket extend` or `escalate`)"
            )
        _in_future(settings, at, now)
        before = {"first_commitment_at": row["first_commitment_at"], "commitment_at": row["commitment_at"]}
        after = {"first_commitment_at": at, "commitment_at": at}
        committed = commitment_event(
            row["id"],
            "commitment_set",
            now,
            actor=by,
            before=before,
            after=after,
            detail={"reason": "commit"},
        )
        return {**after, "sla_commitment_at": at}, [committed], []

    return _changing(engine, ctx, number, now, change)


def extend(
    engine: Engine,
    ctx: SlaContext,
    number: str,
    *,
    until: dt.datetime,
    reason: str,
    by: str,
    now: dt.datetime | None = None,
) -> CommitmentChanged:
    """Extend the commitment to ``until`` (later than the current one); the requester is mailed
    the new time in the same transaction."""
    now = now or utcnow()
    settings = ctx.settings

    def change(conn: Connection, row: Any) -> Change:
        _still_open(row)
        if row["commitment_at"] is None:
            raise InvalidChange(
                f"{number} has no commitment yet: triage it (`intaked ticket triage`) or commit to a"
                " time (`intaked ticket commit`) first"
            )
        _later(settings, row, until, now)
        count = row["extension_count"] + 1
        extended = commitment_event(
            row["id"],
            "commitment_extended",
            now,
            actor=by,
            before={"commitment_at": row["commitment_at"], "extension_count": count - 1},
            after={"commitment_at": until, "extension_count": count},
            detail={"reason": reason},
        )
        key = f"extension_notice:{row['id']}:{count}"
        mails = extension_notice(conn, settings, row, until, reason=reason, key=key)
        values = {"commitment_at": until, "sla_commitment_at": until, "extension_count": count}
        return values, [extended], mails

    return _changing(engine, ctx, number, now, change)


def escalate(
    engine: Engine,
    ctx: SlaContext,
    number: str,
    *,
    to: str,
    reason: str,
    by: str,
    until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> CommitmentChanged:
    """Escalate the ticket to ``to`` (a team, whose lead is mailed, or a person), and with
    ``until`` set a new commitment (later than the current one; the requester is mailed it)."""
    now = now or utcnow()
    settings = ctx.settings
    recipient = Recipient.named(settings, to)

    def change(conn: Connection, row: Any) -> Change:
        _still_open(row)
        if until is not None:
            _later(settings, row, until, now)
        count = row["escalation_count"] + 1
        before: dict[str, Any] = {"escalation_count": count - 1}
        after: dict[str, Any] = {"escalation_count": count}
        values: dict[str, Any] = {"escalation_count": count}
        mails = escalation_notice(settings, row, recipient, reason=reason, by=by, until=until, count=count)
        if until is not None:
            before["commitment_at"] = row["commitment_at"]
            after["commitment_at"] = values["commitment_at"] = values["sla_commitment_at"] = until
            key = f"extension_notice:{row['id']}:escalation-{count}"
            mails += extension_notice(conn, settings, row, until, reason=reason, key=key)
        detail = {"to": recipient.name, "address": recipient.address, "as": recipient.role, "reason": reason}
        escalated = commitment_event(
            row["id"], "escalated", now, actor=by, before=before, after=after, detail=detail
        )
        return values, [escalated], mails

    return _changing(engine, ctx, number, now, change)
