"""What people do to a ticket through intaked (triage, take, resolve, release from the spam
quarantine) and to a calendar
(holidays and make-up days), applied with the same reactions the daemon has to other tools'
changes: deadlines recomputed in the same transaction, every change recorded in ``ticket_events``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update

from intaked.outbound.acks import AckCandidate, queue_acknowledgements
from intaked.outbound.compose import mail_payload, new_message_id, render_notice
from intaked.outbound.outbox import enqueue
from intaked.paging.pages import cancel_page, start_page
from intaked.paging.policy import PAGED_PRIORITIES
from intaked.parsing import parse_message
from intaked.sla.context import SlaContext, current_context, load_context
from intaked.sla.deadlines import Deadlines, compute
from intaked.sla.tracker import apply_changes, recompute_open
from intaked.store.dialect import insert_or_merge, locked
from intaked.store.models import (
    PRIORITIES,
    calendar_override_table,
    inbound_item_table,
    message_table,
    ticket_table,
)
from intaked.store.rawbytes import decompress_raw
from intaked.store.types import utcnow
from intaked.surveys.sending import queue_closed_surveys
from intaked.tickets.events import event, events_from_acks, record_events
from intaked.tickets.rca import open_rca_followups

_t = ticket_table


class TicketNotFound(LookupError):
    """No ticket has that number."""


class InvalidChange(ValueError):
    """The change does not apply to this ticket (e.g. resolving a closed one)."""


@dataclass(frozen=True)
class Changed:
    number: str
    deadlines: Deadlines


def locked_row(conn: Connection, number: str) -> Any:
    """Ticket ``number``'s row, locked until the transaction ends; :class:`TicketNotFound` if none."""
    query = select(_t).where(_t.c.number == number)
    query = locked(conn, query)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise TicketNotFound(number)
    return row


def _change(
    engine: Engine,
    ctx: SlaContext,
    number: str,
    values: dict[str, Any],
    kind: str,
    detail: dict[str, Any],
    actor: str,
    now: dt.datetime,
    check: Any = None,
    also: Callable[[Connection, Any], object] | None = None,
) -> Changed:
    """Apply ``values`` to ticket ``number`` with its SLA consequences and event, and ``also``'s
    writes (side effects of the change), in one transaction."""
    with engine.begin() as conn:
        row = locked_row(conn, number)
        if check is not None:
            check(row)
        conn.execute(update(_t).where(_t.c.id == row["id"]).values(**values, updated_at=now))
        row = locked_row(conn, number)
        sla_values, sla_events = apply_changes(ctx, row, now)
        queue_closed_surveys(conn, ctx.settings, [row], now)  # a command that closed it
        conn.execute(update(_t).where(_t.c.id == row["id"]).values(**sla_values))
        record_events(conn, [event(row["id"], kind, now, actor=actor, detail=detail), *sla_events])
        row = locked_row(conn, number)
        if also is not None:
            also(conn, row)
        return Changed(number, compute(ctx, row))


def triage(
    engine: Engine,
    ctx: SlaContext,
    number: str,
    *,
    priority: str,
    team: str | None = None,
    by: str = "operator",
    now: dt.datetime | None = None,
) -> Changed:
    """Set the priority (and the team): the ticket's response and resolution clocks start counting."""
    if priority not in PRIORITIES:
        raise InvalidChange(f"priority {priority!r} is not one of {', '.join(PRIORITIES)}")
    now = now or utcnow()
    values: dict[str, Any] = {"priority": priority, "triaged_at": now, "triaged_by": by}
    if team:
        values["team"] = team

    def open_only(row: Any) -> None:
        if row["status"] == "closed":
            raise InvalidChange(f"{number} is closed")

    def page(conn: Connection, row: Any) -> None:
        if row["status"] not in ("new", "open", "pending"):
            return  # a resolved ticket's priority is bookkeeping: nobody is woken for it
        if priority in PAGED_PRIORITIES:
            start_page(
                conn,
                ctx.settings,
                row["id"],
                priority,
                reason=f"triaged by {by}",
                unconfirmed=False,
                actor=by,
                now=now,
            )
        else:
            cancel_page(conn, row["id"], reason=f"priority set to {priority} by {by}", actor=by, now=now)

    return _change(
        engine, ctx, number, values, "triaged", {"priority": priority, "team": team}, by, now, open_only, page
    )


def take(engine: Engine, ctx: SlaContext, number: str, *, by: str, now: dt.datetime | None = None) -> Changed:
    """IT staff took the ticket: first response given, status ``open``."""
    now = now or utcnow()

    def takeable(row: Any) -> None:
        if row["status"] in ("resolved", "closed"):
            raise InvalidChange(f"{number} is {row['status']}")
        if row["status"] == "spam":
            raise InvalidChange(f"{number} is in the spam quarantine: release it first")

    values = {"status": "open", "first_response_at": now, "first_response_by": by}
    return _change(engine, ctx, number, values, "taken", {"by": by}, by, now, takeable)


def resolve(
    engine: Engine,
    ctx: SlaContext,
    number: str,
    *,
    note: str = "",
    by: str = "operator",
    now: dt.datetime | None = None,
) -> Changed:
    """Resolve the ticket; the requester is told (through the outbox) that it closes by itself
    after ``lifecycle.auto_close_after`` unless they reply. A major incident's open linked
    tickets are resolved with it, each requester told likewise."""
    now = now or utcnow()

    def resolvable(row: Any) -> None:
        if row["status"] in ("resolved", "closed"):
            raise InvalidChange(f"{number} is already {row['status']}")

    def notify(conn: Connection, row: Any) -> None:
        if row["requester_email"]:
            enqueue(conn, [_resolved_notice(conn, ctx, row, note)], now)
        cancel_page(conn, row["id"], reason=f"resolved by {by}", actor=by, now=now)
        _resolve_linked(conn, ctx, row, note=note, by=by, now=now)
        open_rca_followups(conn, ctx.settings, [row], now)  # a P1/P2: the QRC's RCA (intaked/tickets/rca.py)

    values = {"status": "resolved", "resolved_at": now, "resolved_by": by}
    return _change(
        engine, ctx, number, values, "resolved", {"by": by, "note": note}, by, now, resolvable, notify
    )


def resolved_elsewhere(
    conn: Connection, settings: Any, rows: Sequence[Mapping[str, Any]], now: dt.datetime
) -> None:
    """What :func:`resolve` does after the status, for tickets another tool wrote ``resolved``
    (the SLA sync found them, intaked/sla/tracker.py ``on_resolved``, in its transaction): a
    major incident's open linked tickets are resolved with it, each requester told, and a P1/P2
    gets its RCA follow-up."""
    ctx = current_context(conn, settings)
    for row in rows:
        by = str(row["resolved_by"] or "another tool")
        _resolve_linked(conn, ctx, row, note="", by=by, now=now)
    open_rca_followups(conn, settings, rows, now)


def _resolve_linked(
    conn: Connection, ctx: SlaContext, incident: Any, *, note: str, by: str, now: dt.datetime
) -> int:
    """Resolving a major incident (docs/paging.md) resolves its open linked tickets, each with its
    SLA consequences, its ``resolved`` event (naming the incident) and its own resolved notice."""
    open_linked = select(_t.c.id).where(
        _t.c.major_incident_id == incident["id"], _t.c.status.in_(("new", "open", "pending"))
    )
    ids = list(conn.execute(open_linked.order_by(_t.c.id)).scalars())
    values = {"status": "resolved", "resolved_at": now, "resolved_by": by, "updated_at": now}
    detail = {"by": by, "note": note, "major_incident": incident["number"]}
    for ticket_id in ids:
        conn.execute(update(_t).where(_t.c.id == ticket_id).values(**values))
        row = conn.execute(select(_t).where(_t.c.id == ticket_id)).mappings().one()
        sla_values, sla_events = apply_changes(ctx, row, now)
        conn.execute(update(_t).where(_t.c.id == ticket_id).values(**sla_values))
        record_events(conn, [event(ticket_id, "resolved", now, actor=by, detail=detail), *sla_events])
        row = conn.execute(select(_t).where(_t.c.id == ticket_id)).mappings().one()
        if row["requester_email"]:
            enqueue(conn, [_resolved_notice(conn, ctx, row, note)], now)
        cancel_page(
            conn, ticket_id, reason=f"major incident {incident['number']} resolved", actor=by, now=now
        )
    return len(ids)


def release(
    engine: Engine, ctx: SlaContext, number: str, *, by: str = "operator", now: dt.datetime | None = None
) -> Changed:
    """Release a ticket from the spam quarantine: it becomes a ``new`` ticket whose triage (and
    response) deadlines count from now (``released_at``), and its requester's acknowledgement is
    queued through the outbox, in the same transaction (unless the mail was automatic)."""
    now = now or utcnow()

    def quarantined(row: Any) -> None:
        if row["status"] != "spam":
            raise InvalidChange(f"{number} is {row['status']}, not in the spam quarantine")

    def acknowledge(conn: Connection, row: Any) -> None:
        first = conn.execute(
            select(
                inbound_item_table.c.raw,
                inbound_item_table.c.raw_encoding,
                inbound_item_table.c.envelope_from,
            )
            .join(message_table, message_table.c.inbound_item_id == inbound_item_table.c.id)
            .where(message_table.c.ticket_id == row["id"], message_table.c.direction == "in")
            .order_by(message_table.c.id)
            .limit(1)
        ).first()
        if first is None:
            return
        parsed = parse_message(decompress_raw(first.raw, first.raw_encoding))
        candidate = AckCandidate(
            ticket_id=row["id"],
            ticket={k: row[k] for k in ("number", "subject", "status", "priority", "channel")},
            requester=row["requester_email"],
            requester_name=row["requester_name"],
            parsed=parsed,
            envelope_from=first.envelope_from,
            received_at=row["created_at"],
        )
        ack_events = queue_acknowledgements(conn, [candidate], ctx.settings, now)
        record_events(conn, events_from_acks(ack_events, now))

    values = {"status": "new", "released_at": now}
    return _change(engine, ctx, number, values, "released", {"by": by}, by, now, quarantined, acknowledge)


def _resolved_notice(conn: Connection, ctx: SlaContext, row: Any, note: str) -> dict[str, Any]:
    settings = ctx.settings
    calendar = ctx.calendar_for(row["team"])
    close_at: dt.datetime | None = row["auto_close_at"]
    context = {
        "ticket": {k: row[k] for k in ("number", "subject", "status", "priority")},
        "requester_name": row["requester_name"],
        "note": note,
        "close_local": close_at.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M %Z") if close_at else "",
    }
    rendered = render_notice("resolved", context, settings.acknowledgements.templates_dir)
    with_threading = conn.execute(
        select(message_table.c.header_message_id)
        .where(message_table.c.ticket_id == row["id"], message_table.c.header_message_id.is_not(None))
        .order_by(message_table.c.id.desc())
        .limit(1)
    ).scalar()
    return {
        "kind": "mail",
        "purpose": "resolved_notice",
        "idempotency_key": f"resolved_notice:{row['id']}:{row['resolved_at'].isoformat()}"[:255],
        "ticket_id": row["id"],
        "recipient": row["requester_email"].lower(),
        "payload": mail_payload(
            from_address=settings.outbound_mail.from_address,
            to_address=row["requester_email"].lower(),
            to_name=row["requester_name"],
            rendered=rendered,
            message_id=new_message_id(settings.outbound_mail.from_address, "resolved"),
            in_reply_to=with_threading,
            references=[with_threading] if with_threading else [],
            auto_submitted="auto-generated",
        ),
    }


def set_override(
    engine: Engine,
    settings: Any,
    calendar: str,
    day: dt.date,
    kind: str,
    name: str,
    by: str | None = None,
) -> int:
    """Add (or replace) a run-time holiday or working day; recomputes the open tickets of that
    calendar at once. Returns how many tickets got new deadlines."""
    _known(settings, calendar)
    table = calendar_override_table
    with engine.begin() as conn:
        statement = insert_or_merge(conn, table).values(
            calendar=calendar, day=day, kind=kind, name=name, created_at=utcnow(), created_by=by
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.calendar, table.c.day],
                set_={"kind": kind, "name": name, "created_at": utcnow(), "created_by": by},
            )
        )
    return recompute_open(engine, load_context(engine, settings), calendar)


def remove_override(engine: Engine, settings: Any, calendar: str, day: dt.date) -> int | None:
    """Remove a run-time override; None if there was none. Recomputes like :func:`set_override`."""
    _known(settings, calendar)
    table = calendar_override_table
    with engine.begin() as conn:
        removed = conn.execute(delete(table).where(table.c.calendar == calendar, table.c.day == day)).rowcount
    if not removed:
        return None
    return recompute_open(engine, load_context(engine, settings), calendar)


def _known(settings: Any, calendar: str) -> None:
    if calendar not in settings.calendars:
        known = ", ".join(sorted(settings.calendars))
        raise InvalidChange(f"no calendar named {calendar!r} (configured: {known})")
