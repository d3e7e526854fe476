"""What happens after an attempt leaves: a failed attempt re-dials or escalates, someone
acknowledges (the page stops, the rest is cancelled, the acknowledger takes command).

All of it needs nothing but the database: what it acts on is frozen on the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, RowMapping, select, update

from intaked.config import Settings
from intaked.paging.policy import REDIAL_ERRORS
from intaked.paging.queries import page_for_ticket
from intaked.paging.rows import (
    AckResult,
    HeldPage,
    PageNotFound,
    end_page,
    hold,
    lock_page,
    page_event,
    previous_position,
)
from intaked.paging.sends import Reach, cancel_outstanding, confirm_acknowledged, queue_attempt
from intaked.store.models import page_attempt_table, page_table, ticket_table
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

_pages = page_table
_attempts = page_attempt_table
_tickets = ticket_table


def attempt_updated(conn: Connection, attempt_id: int, now: dt.datetime) -> None:
    """React to an attempt's new status (in the caller's transaction): re-dial a busy or
    unanswered call, or escalate at once when every attempt of the step that ran last failed.

    Needs nothing but the database: what it acts on is frozen on the page (the Twilio transport
    is given it as its attempt listener and calls it after every change it makes)."""
    attempt = conn.execute(select(_attempts).where(_attempts.c.id == attempt_id)).mappings().one_or_none()
    if attempt is None or attempt["status"] != "failed":
        return
    page = lock_page(conn, attempt["page_id"])
    if page is None:
        return
    detail = {
        "page": page["id"],
        "person": attempt["person"],
        "channel": attempt["channel"],
        "error_code": attempt["error_code"],
        "error": attempt["error"],
    }
    page_event(conn, page["ticket_id"], "page_attempt_failed", detail, now)
    if page["state"] != "active":
        return
    held = hold(conn, page, now)
    if not _redial(held, attempt):
        _escalate_if_step_failed(held, attempt)


def _redial(held: HeldPage, attempt: RowMapping) -> bool:
    """Dial a busy or unanswered call again a little later, while retries are left."""
    policy = held.policy
    if not (
        attempt["channel"] == "call"
        and REDIAL_ERRORS & {attempt["error"], attempt["error_code"]}
        and attempt["retry"] < policy.get("call_retries", 0)
    ):
        return False
    person = Reach(name=attempt["person"], phone=attempt["address"])
    later = held.now + dt.timedelta(seconds=policy.get("call_retry_after_seconds", 60))
    queue_attempt(
        held,
        person,
        "call",
        round_=attempt["round"],
        step=attempt["step"],
        retry=attempt["retry"] + 1,
        not_before=later,
    )
    return True


def _escalate_if_step_failed(held: HeldPage, attempt: RowMapping) -> None:
    """Escalate at once when every attempt of the step that ran last failed."""
    conn, page = held.conn, held.page
    steps = held.policy.get("steps") or []
    if not steps:
        return
    last_round, last_step = previous_position(page, len(steps))
    if (attempt["round"], attempt["step"]) != (last_round, last_step):
        return  # an earlier step's failure: the chain has moved on already
    statuses = (
        conn.execute(
            select(_attempts.c.status).where(
                _attempts.c.page_id == page["id"],
                _attempts.c.round == last_round,
                _attempts.c.step == last_step,
            )
        )
        .scalars()
        .all()
    )
    if statuses and all(s == "failed" for s in statuses):
        escalate_now(
            conn, page, reason=f"every attempt of step {last_step + 1} failed", actor="intaked", now=held.now
        )


def escalate_now(
    conn: Connection, page: Mapping[str, Any], *, reason: str, actor: str, now: dt.datetime
) -> bool:
    """Move the page's next step to now (a permanent failure, or 9 pressed); the worker runs it."""
    if page["state"] != "active":
        return False
    conn.execute(
        update(_pages)
        .where(_pages.c.id == page["id"])
        .values(next_step_at=now, fence=page["fence"] + 1, updated_at=now)
    )
    page_event(conn, page["ticket_id"], "page_escalated", {"page": page["id"], "why": reason}, now, actor)
    log.warning("page_escalated", page=page["id"], why=reason)
    return True


def acknowledge(
    conn: Connection,
    settings: Settings,
    page_id: int,
    *,
    by: str,
    channel: str,
    now: dt.datetime,
    attempt_id: int | None = None,
) -> AckResult:
    """The first acknowledgement wins (in the caller's transaction; also for a page that was
    given up, since someone answering late must still be able to take command): the page stops, its queued
    SMS and calls are cancelled, ringing calls are hung up, the acknowledger becomes the ticket's
    incident commander, and everyone already paged is told by SMS. Later ones change nothing."""
    page = lock_page(conn, page_id)
    if page is None:
        raise PageNotFound(f"no page {page_id}")
    held = hold(conn, page, now)
    ticket = held.ticket
    if page["state"] not in ("active", "exhausted"):  # a late answer to a given-up page still counts
        return AckResult(False, page_id, ticket["number"], page["state"], page["acknowledged_by"])
    end_page(conn, page, "acknowledged", now, acknowledged_at=now, acknowledged_by=by, ack_channel=channel)
    conn.execute(
        update(_tickets)
        .where(_tickets.c.id == ticket["id"], _tickets.c.incident_commander.is_(None))
        .values(incident_commander=by, updated_at=now)
    )
    if attempt_id is not None:
        conn.execute(
            update(_attempts)
            .where(_attempts.c.id == attempt_id)
            .values(status="acknowledged", acknowledged_at=now)
        )
    cancelled = cancel_outstanding(held)
    confirmed = confirm_acknowledged(held, settings, by)
    detail = {
        "page": page_id,
        "by": by,
        "channel": channel,
        "cancelled": cancelled,
        "confirmed_to": confirmed,
    }
    page_event(conn, ticket["id"], "page_acknowledged", detail, now, by)
    log.info("page_acknowledged", page=page_id, ticket=ticket["number"], by=by, channel=channel)
    return AckResult(True, page_id, ticket["number"], "acknowledged", by)


def acknowledge_ticket(
    engine: Engine, settings: Settings, number: str, *, by: str, now: dt.datetime | None = None
) -> AckResult:
    """``intaked page ack NUMBER --by NAME``."""
    now = now or utcnow()
    with engine.begin() as conn:
        page = page_for_ticket(conn, number)
        return acknowledge(conn, settings, page["id"], by=by, channel="cli", now=now)
