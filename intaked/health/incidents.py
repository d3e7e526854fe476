"""The incidents of the alarm in the ``alarms`` table (docs/schema.md): one row per condition, so
that each incident is told once, whatever restarts or other nodes do.

Every step is a conditional statement, safe when several fronts run it at once: opening inserts
the row (or re-opens a resolved one); the front whose update sets ``notified_at`` sends the alarm
(:func:`claim_alarm`); the one whose update sets ``resolved_at`` on a notified incident sends the
recovery notice (:func:`resolve`). A send that failed hands the claim back
(:func:`release_claim`), and the next check tries again.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from intaked.store.engine import read_only
from intaked.store.models import alarm_table

_alarms = alarm_table


def claim_alarm(engine: Engine, key: str, detail: str, now: dt.datetime) -> bool:
    """Open the incident of ``key`` (if none is open) and claim its alarm: True when this call
    claimed it, i.e. the alarm is this front's to send (False: it went already, or another front
    is sending it)."""
    _open(engine, key, detail, now)
    with engine.begin() as conn:
        claimed = conn.execute(
            update(_alarms)
            .where(_alarms.c.key == key, _alarms.c.resolved_at.is_(None), _alarms.c.notified_at.is_(None))
            .values(notified_at=now, detail=detail)
        )
        return claimed.rowcount == 1


def _open(engine: Engine, key: str, detail: str, now: dt.datetime) -> None:
    with engine.begin() as conn:
        reopened = conn.execute(
            update(_alarms)
            .where(_alarms.c.key == key, _alarms.c.resolved_at.is_not(None))
            .values(opened_at=now, notified_at=None, resolved_at=None, detail=detail)
        )
        if reopened.rowcount == 1:
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(_alarms).values(key=key, opened_at=now, detail=detail))
    except IntegrityError:
        pass  # open already (another front, or an earlier check): nothing to do


def release_claim(engine: Engine, key: str, claimed_at: dt.datetime) -> None:
    """The alarm claimed at ``claimed_at`` could not be sent: the next check sends it."""
    with engine.begin() as conn:
        conn.execute(
            update(_alarms)
            .where(_alarms.c.key == key, _alarms.c.notified_at == claimed_at, _alarms.c.resolved_at.is_(None))
            .values(notified_at=None)
        )


def resolve(engine: Engine, key: str, now: dt.datetime) -> bool:
    """Close the open incident of ``key``: True when this call closed one whose alarm went out
    (the recovery notice is this front's to send). One never told is closed without a word."""
    with engine.begin() as conn:
        told = conn.execute(
            update(_alarms)
            .where(_alarms.c.key == key, _alarms.c.resolved_at.is_(None), _alarms.c.notified_at.is_not(None))
            .values(resolved_at=now)
        )
        conn.execute(
            update(_alarms)
            .where(_alarms.c.key == key, _alarms.c.resolved_at.is_(None), _alarms.c.notified_at.is_(None))
            .values(resolved_at=now)
        )
        return told.rowcount == 1


def open_incidents(engine: Engine) -> dict[str, bool]:
    """The conditions with an open incident, each with whether its alarm went out."""
    with read_only(engine).connect() as conn:
        rows = conn.execute(
            select(_alarms.c.key, _alarms.c.notified_at).where(_alarms.c.resolved_at.is_(None))
        )
        return {row.key: row.notified_at is not None for row in rows}
