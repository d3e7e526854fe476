"""Re-parsing a ticket's stored raw mail after a parser fix (``intaked reprocess NUMBER``).

Each inbound message of the ticket is parsed again from the raw bytes kept in the ledger and its
row is updated in place (same id, same dedupe key: nothing is duplicated); its attachments are
replaced. The ticket's subject and requester follow its first message unless a person changed
them since. Every change is recorded as a ``reprocessed`` event with before and after.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, select, update

from intaked.intake.messages import parsed_message_columns, store_attachments
from intaked.intake.parsepool import parse_in_process
from intaked.parsing import ParsedMessage
from intaked.store.models import (
    attachment_table,
    inbound_item_table,
    message_table,
    ticket_table,
)
from intaked.store.rawbytes import decompress_raw
from intaked.store.types import utcnow
from intaked.tickets.events import TicketEvent, clean_text, event, record_events, to_json

TRACKED = ("subject", "sender", "body_text", "header_message_id", "in_reply_to", "parse_problems")


class TicketNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Reparsed:
    """What re-parsing changed on one message."""

    message_id: int
    changed: dict[str, tuple[Any, Any]]
    attachments_before: int
    attachments_after: int


def reprocess_ticket(engine: Engine, number: str, *, actor: str = "intaked reprocess") -> list[Reparsed]:
    """Re-parse every stored inbound message of ticket ``number``; returns what changed."""
    results: list[Reparsed] = []
    now = utcnow()
    with engine.begin() as conn:
        ticket = conn.execute(select(ticket_table).where(ticket_table.c.number == number)).first()
        if ticket is None:
            raise TicketNotFound(number)
        rows = conn.execute(
            select(message_table, inbound_item_table.c.raw, inbound_item_table.c.raw_encoding)
            .join(inbound_item_table, inbound_item_table.c.id == message_table.c.inbound_item_id)
            .where(message_table.c.ticket_id == ticket.id, message_table.c.direction == "in")
            .order_by(message_table.c.id)
        ).all()
        first_old: dict[str, Any] | None = None
        first_new: ParsedMessage | None = None
        for row in rows:
            raw = decompress_raw(row.raw, row.raw_encoding)
            result = parse_in_process(raw)
            parsed = result if isinstance(result, ParsedMessage) else None
            problems = parsed.problems if parsed else [str(result)]
            columns: dict[str, Any] = parsed_message_columns(parsed, None) if parsed else {}
            if parsed and not columns["sender"]:
                columns["sender"] = row.sender
            columns["parse_problems"] = clean_text(to_json(problems)) if problems else None
            changed = {
                name: (getattr(row, name), columns[name])
                for name in TRACKED
                if name in columns and getattr(row, name) != columns[name]
            }
            conn.execute(update(message_table).where(message_table.c.id == row.id).values(**columns))
            before = conn.execute(
                select(attachment_table.c.id).where(attachment_table.c.message_id == row.id)
            ).all()
            conn.execute(delete(attachment_table).where(attachment_table.c.message_id == row.id))
            store_attachments(conn, [(row.id, parsed)])
            after = len(parsed.attachments) if parsed else 0
            results.append(Reparsed(row.id, changed, len(before), after))
            if first_old is None:
                first_old, first_new = dict(row._mapping), parsed
        ticket_changes = _follow_first_message(ticket._mapping, first_old, first_new)
        if ticket_changes:
            conn.execute(
                update(ticket_table)
                .where(ticket_table.c.id == ticket.id)
                .values(**{k: v for k, (_, v) in ticket_changes.items()}, updated_at=now)
            )
        record_events(conn, [_reprocessed_event(ticket.id, ticket_changes, results, actor, now)])
    return results


def _reprocessed_event(
    ticket_id: int,
    ticket_changes: dict[str, tuple[Any, Any]],
    results: Sequence[Reparsed],
    actor: str,
    now: dt.datetime,
) -> TicketEvent:
    """The ``reprocessed`` event: what changed on the ticket and in each message."""
    old_values = {k: b for k, (b, _) in ticket_changes.items()}
    new_values = {k: a for k, (_, a) in ticket_changes.items()}
    detail = [
        {"message": r.message_id, "changed": sorted(r.changed), "attachments": r.attachments_after}
        for r in results
    ]
    return event(
        ticket_id,
        "reprocessed",
        now,
        actor=actor,
        before=old_values if ticket_changes else None,
        after=new_values if ticket_changes else None,
        detail=detail,
    )


def _follow_first_message(
    ticket: Any, old: dict[str, Any] | None, new: ParsedMessage | None
) -> dict[str, tuple[Any, Any]]:
    """Ticket fields that came from the first message and nobody has edited since."""
    if old is None or new is None:
        return {}
    changes: dict[str, tuple[Any, Any]] = {}
    new_subject = clean_text(new.subject) or ""
    if ticket["subject"] == old["subject"] and new_subject != ticket["subject"]:
        changes["subject"] = (ticket["subject"], new_subject)
    if new.sender is not None:
        if (
            new.sender.address
            and ticket["requester_email"] == old["sender"]
            and new.sender.address != old["sender"]
        ):
            changes["requester_email"] = (ticket["requester_email"], new.sender.address)
        if new.sender.name and ticket["requester_name"] != new.sender.name and not ticket["requester_name"]:
            changes["requester_name"] = (ticket["requester_name"], new.sender.name)
    return changes


def describe(results: list[Reparsed]) -> str:
    lines = []
    for result in results:
        what = ", ".join(sorted(result.changed)) or "nothing changed"
        counts = f"{result.attachments_before} -> {result.attachments_after}"
        lines.append(f"message {result.message_id}: {what}; attachments {counts}")
    return "\n".join(lines) or "the ticket has no stored inbound mail"
