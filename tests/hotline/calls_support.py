"""Helpers of the voicemail tests: a ticket with a call on it, written directly with SQLAlchemy
Core, and the rows to look at afterwards (the fixtures are in conftest.py)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import Engine, insert, select

from intaked.store.models import call_table, message_table, ticket_event_table, ticket_table
from tests.twilio.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, twilio_settings

__all__ = ["ACCOUNT_SID", "AUTH_TOKEN", "PUBLIC_URL", "twilio_settings"]

CALLER = "+886912345678"
HOTLINE = "+886212345678"


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def make_call(
    engine: Engine,
    *,
    number: str = "IT-202611-00001",
    call_sid: str | None = None,
    outcome: str = "in_progress",
    with_message: bool = True,
    started_at: dt.datetime | None = None,
    **values: Any,
) -> str:
    """A phone ticket with one call (and its message unless ``with_message`` is false); the CallSid."""
    sid = call_sid or new_sid("CA")
    now = started_at or dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        ticket_id = conn.execute(select(ticket_table.c.id).where(ticket_table.c.number == number)).scalar()
        if ticket_id is None:
            ticket_id = conn.execute(
                insert(ticket_table)
                .values(
                    number=number,
                    channel="phone",
                    subject=f"Call from {CALLER}",
                    requester_phone=CALLER,
                    created_at=now,
                    updated_at=now,
                )
                .returning(ticket_table.c.id)
            ).scalar_one()
        message_id = None
        if with_message:
            message_id = conn.execute(
                insert(message_table)
                .values(
                    ticket_id=ticket_id,
                    direction="in",
                    channel="phone",
                    sender=CALLER,
                    subject=f"Call from {CALLER}",
                    body_text="Menu choice 2: other IT problem.",
                    header_message_id=f"call:{sid}",
                    created_at=now,
                )
                .returning(message_table.c.id)
            ).scalar_one()
        conn.execute(
            insert(call_table).values(
                call_sid=sid,
                ticket_id=ticket_id,
                message_id=message_id,
                from_number=CALLER,
                to_number=HOTLINE,
                outcome=outcome,
                started_at=now,
                source="webhook",
                created_at=now,
                updated_at=now,
                **values,
            )
        )
    return sid


def call_row(engine: Engine, call_sid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(call_table).where(call_table.c.call_sid == call_sid)).mappings().one()


def ticket_of(engine: Engine, call_sid: str) -> Any:
    with engine.connect() as conn:
        return (
            conn.execute(
                select(ticket_table)
                .join(call_table, call_table.c.ticket_id == ticket_table.c.id)
                .where(call_table.c.call_sid == call_sid)
            )
            .mappings()
            .one()
        )


def event_kinds(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(ticket_event_table.c.kind).order_by(ticket_event_table.c.id)).scalars()
        )
