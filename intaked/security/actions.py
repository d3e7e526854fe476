"""What people do to a security incident (``intaked security level|aware|notified``): each writes
its column with an event, in one transaction with the ticket's row locked, and brings the
ticket's clocks and chain up to date at once (intaked/security/tracker.py). Setting a level on a
ticket of another category makes it a security incident (the security team is told once)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from intaked.config import Settings
from intaked.security.mails import team_notice
from intaked.security.tracker import CATEGORY, bring_up_to_date
from intaked.sla.tracker import event
from intaked.store.dialect import locked
from intaked.store.models import ticket_event_table, ticket_table
from intaked.store.types import utcnow

_t = ticket_table


class NoSuchTicket(LookupError):
    """No ticket has that number."""


class NotSecurityIncident(ValueError):
    """The ticket is not a security incident (and the change needs one) or is closed."""


def _held(conn: Connection, number: str) -> Mapping[Any, Any]:
    row = conn.execute(locked(conn, select(_t).where(_t.c.number == number))).mappings().first()
    if row is None:
        raise NoSuchTicket(number)
    if row["status"] == "closed":
        raise NotSecurityIncident(f"ticket {number} is closed")
    return row


def _write(
    conn: Connection,
    settings: Settings,
    row: Mapping[Any, Any],
    values: dict[str, Any],
    kind: str,
    by: str,
    now: dt.datetime,
) -> Mapping[Any, Any]:
    """Write ``values`` with the ``kind`` event (before and after), then the clocks and chain."""
    before = {key: row[key] for key in values}
    conn.execute(update(_t).where(_t.c.id == row["id"]).values(**values, updated_at=now))
    detail = {"before": before, "after": values}
    conn.execute(ticket_event_table.insert(), [event(row["id"], kind, detail, now, by)])
    current = conn.execute(select(_t).where(_t.c.id == row["id"])).mappings().one()
    bring_up_to_date(conn, settings, current, now)
    return conn.execute(select(_t).where(_t.c.id == row["id"])).mappings().one()


def set_level(
    engine: Engine, settings: Settings, number: str, level: int, *, by: str, now: dt.datetime | None = None
) -> Mapping[Any, Any]:
    """Set the ticket's level (1-4); returns the ticket as it is after."""
    now = now or utcnow()
    with engine.begin() as conn:
        row = _held(conn, number)
        values: dict[str, Any] = {"security_level": level}
        if row["category"] != CATEGORY:
            values["category"] = CATEGORY
            team_notice(conn, settings, {**row, **values}, row["id"], now)
        return _write(conn, settings, row, values, "security_level_set", by, now)


Instant = dt.datetime | None


def set_aware(
    engine: Engine, settings: Settings, number: str, at: dt.datetime, *, by: str, now: Instant = None
) -> Mapping[Any, Any]:
    """Set when the organisation became aware of the incident (the clocks count from it)."""
    hint = " (set its level first)"
    return _set_time(engine, settings, number, "security_aware_at", at, "security_aware_set", by, now, hint)


def set_notified(
    engine: Engine, settings: Settings, number: str, at: dt.datetime, *, by: str, now: Instant = None
) -> Mapping[Any, Any]:
    """Record that the authority was notified at ``at`` (the notification clock stops)."""
    return _set_time(engine, settings, number, "security_notified_at", at, "security_notified", by, now, "")


def _set_time(
    engine: Engine,
    settings: Settings,
    number: str,
    column: str,
    at: dt.datetime,
    kind: str,
    by: str,
    now: dt.datetime | None,
    hint: str,
) -> Mapping[Any, Any]:
    """Write one of a security incident's times (``column``), with its event ``kind``."""
    now = now or utcnow()
    with engine.begin() as conn:
        row = _held(conn, number)
        if row["category"] != CATEGORY:
            raise NotSecurityIncident(f"ticket {number} is not a security incident{hint}")
        return _write(conn, settings, row, {column: at}, kind, by, now)
