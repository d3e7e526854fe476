"""Running a page's due escalation steps: who is paged at each step, when the next one is due,
the end of a page nobody acknowledged, and the fallback mail when the provider is unreachable.

Timers (APScheduler, the poll) only wake :func:`run_due`; ``pages.next_step_at`` decides. A step
runs only while the page's ``fence`` is the one the wake-up read, so a step that runs twice, or
late after someone acknowledged, changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, select, update

from intaked.config import Settings
from intaked.paging.policy import seconds
from intaked.paging.rows import HeldPage, end_page, hold, lock_page, page_event, resolve_person
from intaked.paging.sends import fallback_mail, queue_attempt
from intaked.store.engine import read_only
from intaked.store.models import page_table
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

_pages = page_table


def run_step(conn: Connection, settings: Settings, page: Mapping[str, Any], now: dt.datetime) -> None:
    """Run the page's current step (the caller holds the row and checked its fence), then advance."""
    held = hold(conn, page, now)
    ticket, policy = held.ticket, held.policy
    steps: list[dict[str, Any]] = policy["steps"]
    index, round_ = page["step"], page["round"]
    if index >= len(steps):  # every round ran and the wait after the last step is over
        _exhaust(held, settings)
        return
    targets = _page_targets(held, settings, steps[index])
    detail = {"page": page["id"], "step": index, "round": round_, "targets": targets}
    page_event(conn, page["ticket_id"], "page_step", detail, now)
    log.info(
        "page_step", page=page["id"], ticket=ticket["number"], step=index, round=round_, targets=len(targets)
    )
    next_index, next_round = index + 1, round_
    if next_index < len(steps):
        due = now + dt.timedelta(seconds=steps[next_index]["after_seconds"])
    else:
        due = now + dt.timedelta(seconds=policy["wait_after_last_step_seconds"])
        if round_ + 1 < policy["repeat"]:
            next_index, next_round = 0, round_ + 1
    conn.execute(
        update(_pages)
        .where(_pages.c.id == page["id"], _pages.c.fence == page["fence"])
        .values(step=next_index, round=next_round, next_step_at=due, fence=page["fence"] + 1, updated_at=now)
    )


def _exhaust(held: HeldPage, settings: Settings) -> None:
    """Nobody acknowledged after every round: the page ends and the QRC list gets a mail."""
    page = held.page
    end_page(held.conn, page, "exhausted", held.now)
    detail = {"page": page["id"], "rounds": page["round"] + 1}
    page_event(held.conn, page["ticket_id"], "page_exhausted", detail, held.now)
    fallback_mail(held, settings, "exhausted")
    log.error("page_exhausted", page=page["id"], ticket=held.ticket["number"])


def _page_targets(held: HeldPage, settings: Settings, step: Mapping[str, Any]) -> list[dict[str, str]]:
    """Queue an attempt for each target of ``step`` on each of its channels the person takes."""
    page = held.page
    targets: list[dict[str, str]] = []
    for target in step["targets"]:
        try:
            person = resolve_person(held.conn, settings, target, held.now)
        except (KeyError, LookupError, ValueError) as exc:
            log.error("page_target_unresolved", page=page["id"], target=target, error=str(exc))
            continue
        if person is None:
            continue
        for channel in step["channels"]:
            if channel == "sms" and not getattr(person, "sms", True):
                continue
            if channel == "call" and not getattr(person, "voice", True):
                continue
            attempt = queue_attempt(held, person, channel, round_=page["round"], step=page["step"], retry=0)
            if attempt is not None:
                targets.append({"person": person.name, "channel": channel})
    return targets


def run_due(engine: Engine, settings: Settings, now: dt.datetime | None = None, limit: int = 50) -> int:
    """Run every page step that is due, each in its own transaction; returns how many ran.

    Safe to call from several processes and twice for the same instant: a step runs only if the
    page is still active, still due, and its fence is the one read here."""
    now = now or utcnow()
    with read_only(engine).connect() as conn:
        due = conn.execute(
            select(_pages.c.id, _pages.c.fence)
            .where(_pages.c.state == "active", _pages.c.next_step_at <= now)
            .order_by(_pages.c.next_step_at)
            .limit(limit)
        ).all()
    ran = sum(run_step_if_current(engine, settings, page_id, fence, now) for page_id, fence in due)
    return ran + _fallbacks_due(engine, settings, now)


def run_step_if_current(
    engine: Engine, settings: Settings, page_id: int, fence: int, now: dt.datetime
) -> bool:
    """Run the page's due step if the page is still active, still due and still at ``fence``
    (the fencing token the wake-up read); False if anyone moved it since."""
    with engine.begin() as conn:
        page = lock_page(conn, page_id)
        if page is None or page["state"] != "active" or page["fence"] != fence:
            return False
        if page["next_step_at"] is None or page["next_step_at"] > now:
            return False
        run_step(conn, settings, page, now)
        return True


def _fallbacks_due(engine: Engine, settings: Settings, now: dt.datetime) -> int:
    """Page by e-mail to the QRC list where the provider has been unreachable for too long."""
    if not settings.paging.fallback_email:
        return 0
    limit = now - dt.timedelta(seconds=seconds(settings.paging.fallback_after))
    with read_only(engine).connect() as conn:
        ids = (
            conn.execute(
                select(_pages.c.id).where(
                    _pages.c.state == "active",
                    _pages.c.fallback_sent_at.is_(None),
                    _pages.c.provider_down_since <= limit,
                )
            )
            .scalars()
            .all()
        )
    return sum(_provider_fallback(engine, settings, page_id, now) for page_id in ids)


def _provider_fallback(engine: Engine, settings: Settings, page_id: int, now: dt.datetime) -> bool:
    """Send one page's provider fallback mail, once (False if it went already or the provider is back)."""
    with engine.begin() as conn:
        page = lock_page(conn, page_id)
        if page is None or page["fallback_sent_at"] is not None or page["provider_down_since"] is None:
            return False
        held = hold(conn, page, now)
        if not fallback_mail(held, settings, "provider"):
            return False
        conn.execute(
            update(_pages).where(_pages.c.id == page_id).values(fallback_sent_at=now, updated_at=now)
        )
        detail = {
            "page": page_id,
            "to": settings.paging.fallback_email,
            "down_since": page["provider_down_since"],
        }
        page_event(conn, page["ticket_id"], "page_fallback_email", detail, now)
        log.warning("page_fallback_email", page=page_id, ticket=held.ticket["number"])
        return True
