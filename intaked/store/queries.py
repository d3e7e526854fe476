"""Read-only views of the store for operators (``intaked tickets ...``, ``intaked calls list``, the
daemon's STATUS line for systemd)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Engine, select

from intaked.store.engine import read_only
from intaked.store.models import (
    attachment_table,
    call_table,
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

DEFAULT_CALLS_LIMIT = 50


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


def list_calls(
    engine: Engine,
    *,
    since: dt.datetime | None = None,
    limit: int = DEFAULT_CALLS_LIMIT,
    tz: dt.tzinfo = dt.UTC,
) -> list[dict[str, Any]]:
    """The newest calls (started at or after ``since``), as JSON-ready dicts with times in ``tz``."""
    query = (
        select(
            call_table,
            ticket_table.c.number.label("ticket"),
            ticket_table.c.callback_requested,
        )
        .join(ticket_table, ticket_table.c.id == call_table.c.ticket_id)
        .order_by(call_table.c.started_at.desc(), call_table.c.id.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(call_table.c.started_at >= since)
    with read_only(engine).connect() as conn:
        found = conn.execute(query).mappings().all()

    def local(value: dt.datetime | None) -> str | None:
        return value.astimezone(tz).isoformat() if value is not None else None

    return [
        {
            "call_sid": row["call_sid"],
            "started_at": local(row["started_at"]),
            "ended_at": local(row["ended_at"]),
            "from": row["from_number"],
            "caller_name": row["caller_name"],
            "to": row["to_number"],
            "ticket": row["ticket"],
            "menu_choice": row["menu_choice"],
            "duration_seconds": row["duration_seconds"],
            "outcome": row["outcome"],
            "recording_sid": row["recording_sid"],
            "recording_seconds": row["recording_seconds"],
            "recording_error": row["recording_error"],
            "callback_requested": bool(row["callback_requested"]),
            "transcript": row["transcript"],
            "transcript_source": row["transcript_source"],
            "transcript_confidence": row["transcript_confidence"],
            "source": row["source"],
        }
        for row in found
    ]
