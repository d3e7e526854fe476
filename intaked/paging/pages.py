"""Starting, confirming and cancelling pages: each page is a persisted state machine that only
the database moves.

A page starts when a ticket's priority becomes P1/P2 (a person triaged it, another tool wrote
``tickets.priority``) or when a trusted source suggested it (then marked *unconfirmed*). Its
escalation policy is frozen onto the row (:mod:`intaked.paging.policy`); its steps run in
:mod:`intaked.paging.steps`, the attempts' results and acknowledgements in
:mod:`intaked.paging.outcomes`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, exists, select, update

from intaked.config import Settings
from intaked.paging.policy import PAGED_PRIORITIES, freeze_policy, missing_policies, missing_policy_reason
from intaked.paging.rows import end_page, hold, lock_page, page_event, ticket_row
from intaked.paging.sends import cancel_outstanding
from intaked.paging.steps import run_step
from intaked.store.dialect import insert_or_merge, locked
from intaked.store.engine import read_only
from intaked.store.models import page_table, ticket_event_table, ticket_table
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

_pages = page_table
_tickets = ticket_table

_OPEN = ("new", "open", "pending")


def start_page(
    conn: Connection,
    settings: Settings,
    ticket_id: int,
    priority: str,
    *,
    reason: str,
    unconfirmed: bool,
    actor: str,
    now: dt.datetime,
    team: str = "",
) -> int | None:
    """Start paging for ``ticket_id`` in the caller's transaction and run the first step at once;
    with ``team``, the page is that team's (:func:`intaked.paging.policy.freeze_policy`).

    Returns the new page's id; None when the priority is not paged (a P1/P2 without a policy:
    event ``page_not_started`` and an error in the log), the ticket has an active
    page (a confirmed priority then clears its *unconfirmed* mark), or someone already took
    command. A ticket whose earlier page was cancelled or given up is paged again."""
    if priority not in PAGED_PRIORITIES:
        return None
    policy = freeze_policy(settings, priority, team)
    if policy is None:
        _not_started(conn, ticket_id, priority, missing_policy_reason(priority), actor=actor, now=now)
        return None
    commanded = conn.execute(
        select(_pages.c.id).where(_pages.c.ticket_id == ticket_id, _pages.c.state == "acknowledged").limit(1)
    ).first()
    if commanded is not None:
        return None
    page_id = _insert_page(conn, ticket_id, priority, policy, reason=reason, unconfirmed=unconfirmed, now=now)
    if page_id is None:
        if not unconfirmed:
            confirm_page(conn, ticket_id, actor=actor, now=now)
        return None
    detail = {"page": page_id, "priority": priority, "unconfirmed": unconfirmed, "reason": reason}
    page_event(conn, ticket_id, "page_started", detail, now, actor)
    page = lock_page(conn, page_id)
    number = ticket_row(conn, ticket_id)["number"]
    log.info("page_started", page=page_id, ticket=number, priority=priority, unconfirmed=unconfirmed)
    run_step(conn, settings, page, now)
    return int(page_id)


def _insert_page(
    conn: Connection,
    ticket_id: int,
    priority: str,
    policy: dict[str, Any],
    *,
    reason: str,
    unconfirmed: bool,
    now: dt.datetime,
) -> Any:
    """Insert the active page with its frozen policy, its first step due now; None if the
    ticket has an active page already. Its reply code is its id."""
    page_id = conn.execute(
        insert_or_merge(conn, _pages)
        .values(
            ticket_id=ticket_id,
            priority=priority,
            state="active",
            unconfirmed=unconfirmed,
            reason=reason,
            policy=json.dumps(policy, ensure_ascii=False),
            step=0,
            round=0,
            fence=0,
            next_step_at=now,
            reply_code="t" + uuid.uuid4().hex[:7],
            started_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[_pages.c.ticket_id], index_where=_pages.c.state == "active")
        .returning(_pages.c.id)
    ).scalar()
    if page_id is not None:
        conn.execute(update(_pages).where(_pages.c.id == page_id).values(reply_code=str(page_id)))
    return page_id


def _not_started(
    conn: Connection, ticket_id: int, priority: str, reason: str, *, actor: str, now: dt.datetime
) -> None:
    """A ticket that should page and pages nobody says so: an event and an error in the log."""
    number = conn.execute(select(_tickets.c.number).where(_tickets.c.id == ticket_id)).scalar()
    page_event(conn, ticket_id, "page_not_started", {"priority": priority, "reason": reason}, now, actor)
    log.error("page_not_started", ticket=number, ticket_id=ticket_id, priority=priority, reason=reason)


def confirm_page(conn: Connection, ticket_id: int, *, actor: str, now: dt.datetime) -> bool:
    """A person set the priority: an unconfirmed page is confirmed (it keeps escalating)."""
    changed = conn.execute(
        update(_pages)
        .where(_pages.c.ticket_id == ticket_id, _pages.c.unconfirmed.is_(True), _pages.c.state == "active")
        .values(unconfirmed=False, updated_at=now)
    ).rowcount
    if changed:
        page_event(conn, ticket_id, "page_confirmed", {}, now, actor)
    return bool(changed)


def cancel_page(conn: Connection, ticket_id: int, *, reason: str, actor: str, now: dt.datetime) -> bool:
    """Stop an active page without an acknowledgement (priority lowered, ticket resolved)."""
    page_id = conn.execute(
        select(_pages.c.id).where(_pages.c.ticket_id == ticket_id, _pages.c.state == "active")
    ).scalar()
    if page_id is None:
        return False
    page = lock_page(conn, page_id)
    if page is None or page["state"] != "active":
        return False
    held = hold(conn, page, now)
    end_page(conn, page, "cancelled", now)
    cancelled = cancel_outstanding(held)
    page_event(
        conn,
        ticket_id,
        "page_cancelled",
        {"page": page_id, "why": reason, "cancelled": cancelled},
        now,
        actor,
    )
    return True


def start_pages_for_priorities(engine: Engine, settings: Settings, now: dt.datetime | None = None) -> int:
    """Follow priorities set outside intaked's commands (another tool wrote ``tickets.priority``
    or ``status``): page every open P1/P2 ticket that has no page, confirm unconfirmed pages whose
    ticket now has a P1/P2 priority, and cancel active pages whose ticket was lowered below P2,
    resolved or closed. Cheap when there is nothing to do: indexed queries on few rows. A P1/P2
    without a policy pages nobody: its ticket gets ``page_not_started`` once."""
    now = now or utcnow()
    _say_unpaged(engine, settings, now)
    if not settings.paging.policies:
        return 0
    paged = [p for p in PAGED_PRIORITIES if p in settings.paging.policies]
    missing = (
        select(_tickets.c.id, _tickets.c.priority, _tickets.c.triaged_by)
        .where(
            _tickets.c.priority.in_(paged),
            _tickets.c.status.in_(_OPEN),
            ~exists().where(_pages.c.ticket_id == _tickets.c.id),
        )
        .limit(100)
    )
    active = (
        select(_pages.c.ticket_id, _pages.c.unconfirmed, _tickets.c.priority, _tickets.c.status)
        .join(_tickets, _tickets.c.id == _pages.c.ticket_id)
        .where(_pages.c.state == "active")
    )
    with read_only(engine).connect() as conn:
        rows = conn.execute(missing).all()
        live = conn.execute(active).all()
    done = 0
    for row in rows:
        with engine.begin() as conn:
            by = row.triaged_by
            reason = f"triaged by {by}" if by else "priority set by a tool"
            started = start_page(
                conn,
                settings,
                row.id,
                row.priority,
                reason=reason,
                unconfirmed=False,
                actor=by or "intaked",
                now=now,
            )
            done += started is not None
    for ticket_id, unconfirmed, priority, status in live:
        done += _follow_ticket(engine, ticket_id, unconfirmed, priority, status, now)
    return done


def _follow_ticket(
    engine: Engine, ticket_id: int, unconfirmed: bool, priority: str | None, status: str, now: dt.datetime
) -> bool:
    """Confirm or cancel an active page after its ticket changed, deciding on the ticket as it
    is in the transaction, not as it was read."""
    if _follow_up(unconfirmed, priority, status) is None:
        return False  # nothing to change: no transaction
    with engine.begin() as conn:
        query = select(_tickets.c.priority, _tickets.c.status).where(_tickets.c.id == ticket_id)
        query = locked(conn, query)
        now_priority, now_status = conn.execute(query).one()
        why = _follow_up(unconfirmed, now_priority, now_status)  # as of now, not of the read above
        if why == "confirm":
            return confirm_page(conn, ticket_id, actor="intaked", now=now)
        if why is not None:
            return cancel_page(conn, ticket_id, reason=why, actor="intaked", now=now)
        return False


def _say_unpaged(engine: Engine, settings: Settings, now: dt.datetime) -> int:
    """Open tickets whose P1/P2 (written by another tool) has no policy, and that have no page
    and no ``page_not_started`` yet, get that event and an error in the log."""
    unpaged = missing_policies(settings)
    if not unpaged:
        return 0
    events = ticket_event_table
    query = (
        select(_tickets.c.id, _tickets.c.priority)
        .where(
            _tickets.c.priority.in_(unpaged),
            _tickets.c.status.in_(_OPEN),
            ~exists().where(_pages.c.ticket_id == _tickets.c.id),
            ~exists().where(events.c.ticket_id == _tickets.c.id, events.c.kind == "page_not_started"),
        )
        .limit(100)
    )
    with read_only(engine).connect() as conn:
        rows = conn.execute(query).all()
    for row in rows:
        with engine.begin() as conn:
            if conn.execute(query.where(_tickets.c.id == row.id)).first() is not None:  # still so
                reason = missing_policy_reason(row.priority)
                _not_started(conn, row.id, row.priority, reason, actor="intaked", now=now)
    return len(rows)


def _follow_up(unconfirmed: bool, priority: str | None, status: str) -> str | None:
    """What an active page needs after its ticket changed: ``"confirm"``, the reason to cancel
    it, or None."""
    if status in ("resolved", "closed"):
        return f"ticket {status}"
    if priority is not None and priority not in PAGED_PRIORITIES:
        return f"priority set to {priority}"
    if unconfirmed and priority in PAGED_PRIORITIES:
        return "confirm"
    return None
