"""Ticket events: the one builder of a ``ticket_events`` row (:func:`event`) and the one way to
record a list of them (:func:`record_events`), plus the text rules their JSON columns follow.

paging/ and sla/ sit below tickets/ (filing pages and computes deadlines), so they keep their own
row builders; everything above them records through here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert

from intaked.parsing.charsets import storable_text
from intaked.store.models import ticket_event_table

ACTOR = "intaked"

#: A ``ticket_events`` row ready for insertion.
TicketEvent = dict[str, Any]

_INSERT_EVENTS = insert(ticket_event_table)


def clean_text(value: str | None) -> str | None:
    """Text the database accepts (:func:`~intaked.parsing.charsets.storable_text`); None stays None."""
    return None if value is None else storable_text(value)


def to_json(value: Any) -> str:
    """JSON as stored in event and problem columns (UTF-8 text, not escaped)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _column(value: Any) -> str | None:
    return None if value is None else clean_text(to_json(value))


def event(
    ticket_id: int,
    kind: str,
    now: dt.datetime,
    *,
    actor: str = ACTOR,
    before: Any = None,
    after: Any = None,
    detail: Any = None,
) -> TicketEvent:
    """One ``ticket_events`` row: ``before``, ``after`` and ``detail`` stored as JSON (None stays NULL)."""
    return {
        "ticket_id": ticket_id,
        "at": now,
        "actor": actor,
        "kind": kind,
        "before": _column(before),
        "after": _column(after),
        "detail": _column(detail),
    }


def record_events(conn: Connection, events: Sequence[TicketEvent]) -> None:
    """Insert ``events`` (one statement, ``executemany``) in the caller's transaction."""
    if events:  # rows built by paging/ or sla/ may leave out before/after: executemany needs all keys
        conn.execute(_INSERT_EVENTS, [{"before": None, "after": None, **row} for row in events])


def events_from_acks(acks: Sequence[dict[str, Any]], now: dt.datetime) -> list[TicketEvent]:
    """The events of the acknowledgements the outbound side queued (``ticket_id``, ``kind``,
    ``detail`` each)."""
    return [event(a["ticket_id"], a["kind"], now, detail=a["detail"]) for a in acks]
