"""The rows the survey modules share: the event builder (``ticket_events``; ``tickets/`` sits
above, so surveys keep their own, like ``sla/`` and ``paging/``), the locked survey row and the
ticket's columns a survey needs."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from intaked.parsing.charsets import storable_text
from intaked.store.dialect import locked
from intaked.store.models import survey_table, ticket_event_table, ticket_table

ACTOR = "intaked"
_t = ticket_table
_s = survey_table
#: The ticket columns the survey modules read.
TICKET_COLUMNS = (
    _t.c.id,
    _t.c.number,
    _t.c.status,
    _t.c.channel,
    _t.c.subject,
    _t.c.requester_name,
    _t.c.requester_email,
    _t.c.requester_phone,
    _t.c.spam_reason,
    _t.c.released_at,
    _t.c.satisfaction_score,
    _t.c.satisfaction_comment,
)


def _json(value: Any) -> str | None:
    return None if value is None else storable_text(json.dumps(value, ensure_ascii=False, default=str))


def event(
    ticket_id: int,
    kind: str,
    now: dt.datetime,
    *,
    detail: Mapping[str, Any] | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``ticket_events`` row by intaked."""
    return {
        "ticket_id": ticket_id,
        "at": now,
        "actor": ACTOR,
        "kind": kind,
        "before": _json(before),
        "after": _json(after),
        "detail": _json(detail),
    }


def record(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Insert ``events`` in the caller's transaction."""
    if events:
        conn.execute(ticket_event_table.insert(), events)


def lock_survey(conn: Connection, survey_id: int) -> Any:
    """The survey row, locked until the transaction ends (one answer at a time)."""
    return conn.execute(locked(conn, select(_s).where(_s.c.id == survey_id))).mappings().one()


def ticket_of(conn: Connection, ticket_id: int) -> Any:
    """The ticket's columns a survey needs."""
    return conn.execute(select(*TICKET_COLUMNS).where(_t.c.id == ticket_id)).mappings().one()
