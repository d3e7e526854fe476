"""Keeping security incidents' clocks current and enforcing them (blocking, on a database thread).

:func:`check_security` runs from the scheduler's ``sla_check`` job, after the SLA's warnings and
breaches. It takes the open ``security_incident`` tickets whose level or awareness time changed
since their clocks were computed (``security_seen_level``, ``security_seen_aware_at``: whoever
wrote them, intaked's commands or another tool, as the SLA tracker notices a priority) or whose
``security_next_check_at`` has come, and :func:`bring_up_to_date` each: the clocks, the internal
reporting chain of a level first set or raised, the warnings (to the security team) and breaches
(to its lead and the team), each once per ticket and clock (``*_warned_at``/``*_breached_at`` and
outbox idempotency keys), in the transaction that records them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, and_, or_, select, update

from intaked.config import Settings
from intaked.outbound.outbox import enqueue
from intaked.security.chain import run_chain, run_lowering
from intaked.security.clocks import Clock, aware_at, clocks, next_check
from intaked.security.mails import local, mail
from intaked.sla.tracker import event
from intaked.store.dialect import locked
from intaked.store.models import security_form_table, ticket_event_table, ticket_table
from intaked.store.types import utcnow

CATEGORY = "security_incident"
OPEN = ("new", "open", "pending", "resolved")
_t = ticket_table
log = structlog.get_logger(__name__)
WHAT = {
    "notify": ("通報主管機關", "notification of the authority"),
    "contain": ("損害控制或復原", "damage control"),
}


def _due(now: dt.datetime) -> Any:
    return and_(
        _t.c.status.in_(OPEN),
        _t.c.category == CATEGORY,
        or_(
            _t.c.security_seen_aware_at.is_(None),
            _t.c.security_aware_at.is_(None),
            _t.c.security_aware_at != _t.c.security_seen_aware_at,
            and_(_t.c.security_level.is_(None), _t.c.security_seen_level.is_not(None)),
            and_(_t.c.security_level.is_not(None), _t.c.security_seen_level.is_(None)),
            _t.c.security_level != _t.c.security_seen_level,
            _t.c.security_next_check_at <= now,
        ),
    )


def check_security(
    engine: Engine, settings: Settings, now: dt.datetime | None = None, limit: int = 200
) -> int:
    """Bring the due security incidents up to date; how many were looked at."""
    now = now or utcnow()
    with engine.begin() as conn:
        query = locked(conn, select(_t).where(_due(now)).order_by(_t.c.id).limit(limit), skip_locked=True)
        rows = conn.execute(query).mappings().all()
        for row in rows:
            bring_up_to_date(conn, settings, row, now)
    return len(rows)


def bring_up_to_date(conn: Connection, settings: Settings, row: Mapping[Any, Any], now: dt.datetime) -> None:
    """Write ``row``'s clocks, chain, warnings and breaches as of ``now`` (``row`` is locked)."""
    values: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    mails: list[dict[str, Any]] = []
    if row["security_aware_at"] is None:
        values["security_aware_at"] = row["created_at"]
    repaired = conn.execute(
        select(security_form_table.c.repaired_at).where(security_form_table.c.ticket_id == row["id"])
    ).scalar()
    current = {**row, **values, "security_repaired_at": repaired}
    notify, contain = clocks(settings, current)
    changed = row["security_seen_level"] != row["security_level"] or row[
        "security_seen_aware_at"
    ] != aware_at(current)
    values.update(
        security_notify_due_at=notify.due_at,
        security_contain_due_at=contain.due_at,
        security_seen_level=row["security_level"],
        security_seen_aware_at=aware_at(current),
    )
    if changed:
        detail = {
            "level": row["security_level"],
            "aware_at": aware_at(current).isoformat(),
            "notify_due_at": notify.due_at.isoformat() if notify.due_at else None,
            "contain_due_at": contain.due_at.isoformat() if contain.due_at else None,
        }
        events.append(event(row["id"], "security_clocks_set", detail, now))
    level, seen = row["security_level"], row["security_seen_level"]
    if level is not None and level > (row["security_chain_level"] or 0):
        values["security_chain_level"] = level
        chain_mails, chain_events = run_chain(conn, settings, {**row, **values}, int(level), now)
        mails.extend(chain_mails)
        events.extend(chain_events)
    elif level is not None and seen is not None and level < seen:
        low_mails, low_events = run_lowering(conn, settings, {**row, **values}, int(seen), int(level), now)
        mails.extend(low_mails)
        events.extend(low_events)
    for clock in (notify, contain):
        _enforce(settings, {**row, **values}, clock, now, values, events, mails)
    values["security_next_check_at"] = next_check({**current, **values}, (notify, contain))
    conn.execute(update(_t).where(_t.c.id == row["id"]).values(**values))
    if events:
        conn.execute(ticket_event_table.insert(), events)
    enqueue(conn, mails, now)


def _enforce(
    settings: Settings,
    row: Mapping[Any, Any],
    clock: Clock,
    now: dt.datetime,
    values: dict[str, Any],
    events: list[dict[str, Any]],
    mails: list[dict[str, Any]],
) -> None:
    """The warning and the breach of ``clock`` that have come and were not recorded yet."""
    if not clock.running or clock.due_at is None or clock.warn_at is None:
        return
    for what, at, column in (
        ("warning", clock.warn_at, f"security_{clock.target}_warned_at"),
        ("breach", clock.due_at, f"security_{clock.target}_breached_at"),
    ):
        if row[column] is not None or at > now:
            continue
        values[column] = now if what == "warning" else clock.due_at
        detail = {"target": clock.target, "due_at": clock.due_at.isoformat()}
        events.append(event(row["id"], f"security_{what}", detail, now))
        mails.extend(_notices(settings, row, clock, what))
        emit = log.warning if what == "breach" else log.info
        emit(f"security_{what}", ticket=row["number"], target=clock.target, due_at=clock.due_at.isoformat())


def _notices(settings: Settings, row: Mapping[Any, Any], clock: Clock, what: str) -> list[dict[str, Any]]:
    """A warning to the security team; a breach to its lead and the team."""
    team = settings.teams.get(settings.security.team)
    if team is None:
        return []
    to = [team.email] if what == "warning" else [team.lead_email, team.email]
    zh, en = WHAT[clock.target]
    word = ("即將逾期", "due soon") if what == "warning" else ("已逾期", "overdue")
    subject = f"[{row['number']}] 資安事件{zh}{word[0]} / Security incident {en} {word[1]}"
    text = (
        f"{zh}{word[0]} / {en} {word[1]}\n\n"
        f"案件 / Ticket: {row['number']}\n"
        f"主旨 / Subject: {row['subject'] or '-'}\n"
        f"等級 / Level: {row['security_level'] or '-'}\n"
        f"期限 / Due: {local(settings, clock.due_at)}\n"
    )
    if clock.target == "notify":
        text += f"\n通報後請記錄 / Once notified: intaked security notified {row['number']} --at ISO\n"
    purpose = f"security_{what}"
    return [
        mail(
            settings,
            row["id"],
            address,
            subject,
            text,
            purpose=purpose,
            key=f"{purpose}:{row['id']}:{clock.target}:{address}",
        )
        for address in dict.fromkeys(a.strip().lower() for a in to if a)
    ]
