"""A claimed outbox row, and the fence its outcome is recorded under: the claim token must still
hold, so a sender whose claim expired (and was taken over) records nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection

from intaked.store.claims import ClaimStates
from intaked.store.models import outbox_table

ACTOR = "intaked"

#: Outbox rows wait in ``pending`` and are sent under a claim in ``sending``.
OUTBOX_CLAIMS = ClaimStates(outbox_table, ready="pending", working="sending")

#: Work done in the transaction that records a row's outcome, only when the claim still held
#: (e.g. the Twilio dispatcher moving the page attempt the row carries).
Within = Callable[[Connection], None]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A claimed row, ready to send."""

    id: int
    kind: str
    purpose: str
    ticket_id: int | None
    recipient: str
    payload: dict[str, Any]
    attempts: int
    created_at: dt.datetime
    token: str


def fenced(row: OutboxRow) -> ColumnElement[bool]:
    """The row, only while it is still ``sending`` under this claim (the fencing token)."""
    return OUTBOX_CLAIMS.fence(row.id, row.token)
