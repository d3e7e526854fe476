"""Where the escalation engine hears about its attempts (the transport calls in, the engine reacts).

:func:`on_attempt_updated` runs in the same transaction as every change of a ``page_attempts``
row made by the Twilio transport: the outbox dispatcher (sent, failed) and the status callbacks
(delivered, ringing, answered, completed, failed, cancelled). The escalation engine fills it in:
early escalation on a permanent failure, a re-dial after busy / no-answer, and so on. It must not
commit, and must only use ``conn``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection


def on_attempt_updated(conn: Connection, attempt_id: int, now: dt.datetime) -> None:
    """Page attempt ``attempt_id`` just changed (read its row through ``conn``). Does nothing yet."""
    del conn, attempt_id, now
