"""Where the escalation engine hears about its attempts (the transport calls in, the engine reacts).

:func:`on_attempt_updated` runs in the same transaction as every change of a ``page_attempts``
row made by the Twilio transport: the outbox dispatcher (sent, failed) and the status callbacks
(delivered, ringing, answered, completed, failed, cancelled). It hands the change to the engine
(intaked/paging/engine.py ``attempt_updated``): a re-dial after busy / no-answer, or the next step
at once when every attempt of the step that ran last failed. It never commits and uses only ``conn``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection

from intaked.paging.engine import attempt_updated


def on_attempt_updated(conn: Connection, attempt_id: int, now: dt.datetime) -> None:
    """Page attempt ``attempt_id`` just changed (its row is read through ``conn``)."""
    attempt_updated(conn, attempt_id, now)
