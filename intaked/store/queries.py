"""Read-only views of the store for operators (``intaked tickets ...``)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select

from intaked.store.engine import read_only
from intaked.store.models import (
    attachment_table,
    inbound_item_table,
    message_table,
    ticket_event_table,
    ticket_table,
)

_tickets = ticket_table
_messages = message_table
_attachments = attachment_table
_events = ticket_event_table
_items = inbound_item_table


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def list_tickets(engine: Engine, *, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
    """The newest tickets first."""
    query = select(_tickets).order_by(_tickets.c.id.desc()).limit(limit)
    if status:
        query = query.where(_tickets.c.status == status)
    with read_only(engine).connect() as conn:
        return [{k: _iso(v) for k, v in row._mapping.items()} for row in conn.execute(query)]


def ticket_detail(engine: Engine, number: str) -> dict[str, Any] | None:
    """One ticket with its messages, attachments (metadata) and events, or None."""
    with read_only(engine).connect() as conn:
        ticket = conn.execute(select(_tickets).where(_tickets.c.number == number)).first()
        if ticket is None:
            return None
        out: dict[str, Any] = {k: _iso(v) for k, v in ticket._mapping.items()}
        messages = conn.execute(
            select(_messages).where(_messages.c.ticket_id == ticket.id).order_by(_messages.c.id)
        ).all()
        out["messages"] = []
        for message in messages:
            data = {k: _iso(v) for k, v in message._mapping.items() if k != "body_html"}
            data["parse_problems"] = json.loads(message.parse_problems) if message.parse_problems else []
            data["attachments"] = [
                {k: _iso(v) for k, v in row._mapping.items()}
                for row in conn.execute(
                    select(_attachments)
                    .where(_attachments.c.message_id == message.id)
                    .order_by(_attachments.c.id)
                )
            ]
            out["messages"].append(data)
        out["events"] = [
            {k: _iso(v) for k, v in row._mapping.items()}
            for row in conn.execute(
                select(_events).where(_events.c.ticket_id == ticket.id).order_by(_events.c.id)
            )
        ]
        return out
