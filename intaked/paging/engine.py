"""The escalation engine: each page is a persisted state machine that only the database moves.

A page starts when a ticket's priority becomes P1/P2 (a person triaged it, another tool wrote
``tickets.priority``) or when a trusted source suggested it (then marked *unconfirmed*). Its
escalation policy is frozen onto the row as JSON, so a configuration change never alters a page
that is under way.

Every transition happens in one transaction that holds the page's row (``FOR UPDATE`` on
PostgreSQL; SQLite has one writer) and checks the page's ``fence``, the fencing token the
wake-up read: a step that runs twice, or late after someone acknowledged, changes nothing.
Timers (APScheduler, the poll) only wake :func:`run_due`; ``pages.next_step_at`` decides.

Side effects (SMS, calls, mails, call cancellations) are outbox rows written in the same
transaction as the transition that causes them, with idempotency keys naming the page, round,
step, person, channel and re-dial, so nothing is sent twice for one cause.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, exists, func, or_, select, update

from intaked.config import PagePolicySettings, Settings
from intaked.outbound.compose import mail_payload, new_message_id
from intaked.outbound.outbox import enqueue
from intaked.paging.texts import PageFacts, confirmation_sms, page_sms
from intaked.ports.phone import page_call_path
from intaked.sla.targets import wall_time
from intaked.sla.tracker import event
from intaked.store.dialect import insert_or_merge, locked
from intaked.store.engine import read_only
from intaked.store.models import (
    outbox_table,
    page_attempt_table,
    page_table,
    ticket_event_table,
    ticket_table,
)
from intaked.store.types import utcnow

log = structlog.get_logger(__name__)

_pages = page_table
_attempts = page_attempt_table
_tickets = ticket_table

PAGED_PRIORITIES = ("P1", "P2")
#: Call outcomes worth dialling again (the phone may be free a minute later).
REDIAL_ERRORS = frozenset({"busy", "no-answer"})
#: An attempt reached the provider (it may have rung or been delivered).
REACHED_STATUSES = ("sent", "delivered", "ringing", "answered", "completed", "acknowledged")


def _seconds(duration: str) -> float:
    return wall_time(duration).total_seconds()


def freeze_policy(settings: Settings, priority: str) -> dict[str, Any] | None:
    """The policy a page of ``priority`` runs, as stored on the page (None: no paging for it)."""
    policy: PagePolicySettings | None = settings.paging.policies.get(priority)  # type: ignore[call-overload]
    if policy is None:
        return None
    return {
        "priority": priority,
        "repeat": policy.repeat,
        "wait_after_last_step_seconds": _seconds(policy.give_up_after),
        "call_retries": settings.paging.call_retries,
        "call_retry_after_seconds": _seconds(settings.paging.call_retry_after),
        "callback_base": _callback_base(settings),
        "from_address": settings.outbound_mail.from_address,
        "steps": [
            {
                "after_seconds": _seconds(step.after),
                "targets": [{"oncall": t.oncall} if t.oncall else {"person": t.person} for t in step.targets],
                "channels": list(step.channels),
            }
            for step in policy.steps
        ],
    }


@dataclass(frozen=True, slots=True)
class AckResult:
    """What an acknowledgement did: ``acknowledged`` is False when the page had already ended."""

    acknowledged: bool
    page_id: int
    number: str
    state: str
    by: str | None


class PageNotFound(LookupError):
    """No page for that ticket (or reply code)."""


# --------------------------------------------------------------------------- starting


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
) -> int | None:
    """Start paging for ``ticket_id`` in the caller's transaction and run the first step at once.

    Returns the new page's id; None when the priority is not paged (a P1/P2 without a policy:
    event ``page_not_started`` and an error in the log), the ticket has an active
    page (a confirmed priority then clears its *unconfirmed* mark), or someone already took
    command. A ticket whose earlier page was cancelled or given up is paged again."""
    if priority not in PAGED_PRIORITIES:
        return None
    policy = freeze_policy(settings, priority)
    if policy is None:
        _not_started(conn, ticket_id, priority, missing_policy_reason(priority), actor=actor, now=now)
        return None
    commanded = conn.execute(
        select(_pages.c.id).where(_pages.c.ticket_id == ticket_id, _pages.c.state == "acknowledged").limit(1)
    ).first()
    if commanded is not None:
        return None
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
    if page_id is None:
        if not unconfirmed:
            confirm_page(conn, ticket_id, actor=actor, now=now)
        return None
    conn.execute(update(_pages).where(_pages.c.id == page_id).values(reply_code=str(page_id)))
    conn.execute(
        ticket_event_table.insert(),
        [
            event(
                ticket_id,
                "page_started",
                {"page": page_id, "priority": priority, "unconfirmed": unconfirmed, "reason": reason},
                now,
                actor,
            )
        ],
    )
    log.info("page_started", page=page_id, ticket_id=ticket_id, priority=priority, unconfirmed=unconfirmed)
    page = lock_page(conn, page_id)
    _run_step(conn, settings, page, now)
    return int(page_id)


def missing_policy_reason(priority: str) -> str:
    """Why a paged priority pages nobody (``intaked check-config`` says it too)."""
    return f"no [paging.policies.{priority}] is configured: a {priority} ticket pages nobody"


def missing_policies(settings: Settings) -> list[str]:
    """The paged priorities (P1, P2) without an escalation policy."""
    return [p for p in PAGED_PRIORITIES if p not in settings.paging.policies]


def _not_started(
    conn: Connection, ticket_id: int, priority: str, reason: str, *, actor: str, now: dt.datetime
) -> None:
    """A ticket that should page and pages nobody says so: an event and an error in the log."""
    number = conn.execute(select(_tickets.c.number).where(_tickets.c.id == ticket_id)).scalar()
    conn.execute(
        ticket_event_table.insert(),
        [event(ticket_id, "page_not_started", {"priority": priority, "reason": reason}, now, actor)],
    )
    log.error("page_not_started", ticket=number, ticket_id=ticket_id, priority=priority, reason=reason)


def confirm_page(conn: Connection, ticket_id: int, *, actor: str, now: dt.datetime) -> bool:
    """A person set the priority: an unconfirmed page is confirmed (it keeps escalating)."""
    changed = conn.execute(
        update(_pages)
        .where(_pages.c.ticket_id == ticket_id, _pages.c.unconfirmed.is_(True), _pages.c.state == "active")
        .values(unconfirmed=False, updated_at=now)
    ).rowcount
    if changed:
        conn.execute(ticket_event_table.insert(), [event(ticket_id, "page_confirmed", {}, now, actor)])
    return bool(changed)


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
            _tickets.c.status.in_(("new", "open", "pending")),
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
        if _follow_up(unconfirmed, priority, status) is None:
            continue  # nothing to change: no transaction
        with engine.begin() as conn:
            query = select(_tickets.c.priority, _tickets.c.status).where(_tickets.c.id == ticket_id)
            query = locked(conn, query)
            now_priority, now_status = conn.execute(query).one()
            why = _follow_up(unconfirmed, now_priority, now_status)  # as of now, not of the read above
            if why == "confirm":
                done += confirm_page(conn, ticket_id, actor="intaked", now=now)
            elif why is not None:
                done += cancel_page(conn, ticket_id, reason=why, actor="intaked", now=now)
    return done


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
            _tickets.c.status.in_(("new", "open", "pending")),
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


# --------------------------------------------------------------------------- steps


def lock_page(conn: Connection, page_id: int) -> Any:
    query = select(_pages).where(_pages.c.id == page_id)
    query = locked(conn, query)
    return conn.execute(query).mappings().one_or_none()


def ticket_row(conn: Connection, ticket_id: int) -> Any:
    return conn.execute(select(_tickets).where(_tickets.c.id == ticket_id)).mappings().one()


def page_facts(ticket: Mapping[str, Any], page: Any) -> PageFacts:
    requester = " ".join(
        str(part)
        for part in (ticket["requester_name"], ticket["requester_phone"] or ticket["requester_email"])
        if part
    )
    return PageFacts(
        priority=page["priority"],
        number=ticket["number"],
        subject=ticket["subject"] or "",
        requester=requester,
        reply_code=page["reply_code"],
        unconfirmed=bool(page["unconfirmed"]),
    )


def _callback_base(settings: Settings) -> str:
    public = getattr(getattr(settings, "webhooks", None), "public_url", "") or ""
    return str(public).rstrip("/")


@dataclass(frozen=True, slots=True)
class _Reach:
    """How to reach one person again (a re-dial): what the first attempt used."""

    name: str
    phone: str
    email: str = ""
    display_name: str = ""


def _queue_attempt(
    conn: Connection,
    page: Mapping[str, Any],
    ticket: Mapping[str, Any],
    person: Any,
    channel: str,
    *,
    round_: int,
    step: int,
    retry: int,
    now: dt.datetime,
    not_before: dt.datetime | None = None,
) -> int | None:
    """Write one attempt and the outbox row that carries it; None if it already exists."""
    address = person.email if channel == "email" else person.phone
    if not address:
        return None
    attempt_id = conn.execute(
        insert_or_merge(conn, _attempts)
        .values(
            page_id=page["id"],
            round=round_,
            step=step,
            person=person.name,
            channel=channel,
            retry=retry,
            address=address,
            status="queued",
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(_attempts.c.id)
    ).scalar()
    if attempt_id is None:
        return None
    facts = page_facts(ticket, page)
    key = f"page:{page['id']}:{round_}:{step}:{person.name}:{channel}:{retry}"
    policy = json.loads(page["policy"])
    base = policy.get("callback_base", "")
    if channel == "sms":
        english = str(getattr(person, "language", "")).startswith("en")
        body = page_sms(facts, english=english)
        row = {"kind": "sms", "payload": {"to": address, "body": body, "attempt_id": attempt_id}}
    elif channel == "call":
        row = {
            "kind": "call",
            "payload": {
                "to": address,
                "url": base + page_call_path(attempt_id),
                "attempt_id": attempt_id,
            },
        }
    else:
        from_address = policy.get("from_address", "")
        text = page_sms(facts)
        row = {
            "kind": "mail",
            "payload": mail_payload(
                from_address=from_address,
                to_address=address,
                to_name=person.display_name,
                rendered={
                    "subject": f"[{facts.priority}] {facts.number} {facts.subject}"[:200],
                    "text": text,
                },
                message_id=new_message_id(from_address, "page"),
                in_reply_to=None,
                references=[],
                auto_submitted="auto-generated",
            ),
        }
    enqueue(
        conn,
        [{**row, "purpose": "page", "idempotency_key": key, "ticket_id": ticket["id"], "recipient": address}],
        now,
    )
    outbox_id = conn.execute(
        select(outbox_table.c.id).where(outbox_table.c.idempotency_key == key)
    ).scalar_one()
    values: dict[str, Any] = {"outbox_id": outbox_id}
    conn.execute(update(_attempts).where(_attempts.c.id == attempt_id).values(**values))
    if not_before is not None:
        conn.execute(
            update(outbox_table).where(outbox_table.c.id == outbox_id).values(next_attempt_at=not_before)
        )
    return int(attempt_id)


def _resolve(conn: Connection, settings: Settings, target: Mapping[str, str], now: dt.datetime) -> Any:
    from intaked.paging.oncall import resolve_target

    return resolve_target(conn, settings, dict(target), now)


def _run_step(conn: Connection, settings: Settings, page: Mapping[str, Any], now: dt.datetime) -> None:
    """Run the page's current step (the caller holds the row and checked its fence), then advance."""
    policy = json.loads(page["policy"])
    steps: list[dict[str, Any]] = policy["steps"]
    ticket = ticket_row(conn, page["ticket_id"])
    index, round_ = page["step"], page["round"]
    if index >= len(steps):  # every round ran and the wait after the last step is over
        _end(conn, page, "exhausted", now)
        conn.execute(
            ticket_event_table.insert(),
            [event(page["ticket_id"], "page_exhausted", {"page": page["id"], "rounds": round_ + 1}, now)],
        )
        _fallback_mail(conn, settings, page, ticket, "exhausted", now)
        log.error("page_exhausted", page=page["id"], ticket=ticket["number"])
        return
    step = steps[index]
    targets: list[dict[str, str]] = []
    for target in step["targets"]:
        try:
            person = _resolve(conn, settings, target, now)
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
            attempt = _queue_attempt(
                conn, page, ticket, person, channel, round_=round_, step=index, retry=0, now=now
            )
            if attempt is not None:
                targets.append({"person": person.name, "channel": channel})
    conn.execute(
        ticket_event_table.insert(),
        [
            event(
                page["ticket_id"],
                "page_step",
                {"page": page["id"], "step": index, "round": round_, "targets": targets},
                now,
            )
        ],
    )
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


def _end(conn: Connection, page: Mapping[str, Any], state: str, now: dt.datetime, **values: Any) -> None:
    conn.execute(
        update(_pages)
        .where(_pages.c.id == page["id"])
        .values(
            state=state, ended_at=now, next_step_at=None, fence=page["fence"] + 1, updated_at=now, **values
        )
    )


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
        _run_step(conn, settings, page, now)
        return True


def page_sends_due(engine: Engine, now: dt.datetime | None = None) -> bool:
    """Whether an SMS, call or hang-up is waiting to be sent now (one indexed probe)."""
    now = now or utcnow()
    with read_only(engine).connect() as conn:
        return (
            conn.execute(
                select(outbox_table.c.id)
                .where(
                    outbox_table.c.state == "pending",
                    outbox_table.c.kind.in_(("sms", "call", "call_cancel")),
                    or_(outbox_table.c.next_attempt_at.is_(None), outbox_table.c.next_attempt_at <= now),
                )
                .limit(1)
            ).first()
            is not None
        )


# --------------------------------------------------------------------------- provider outage


def _fallback_mail(
    conn: Connection,
    settings: Settings,
    page: Mapping[str, Any],
    ticket: Mapping[str, Any],
    why: str,
    now: dt.datetime,
) -> bool:
    to = settings.paging.fallback_email
    if not to:
        return False
    from_address = settings.outbound_mail.from_address
    facts = page_facts(ticket, page)
    reason = {
        "exhausted": "無人確認 / nobody acknowledged the page",
        "provider": "簡訊與電話無法送出 / SMS and calls cannot be sent (Twilio unreachable)",
    }[why]
    text = (
        f"{page_sms(facts)}\n\n{reason}\n\n"
        f"確認 / acknowledge: intaked page ack {facts.number} --by <name>,\n"
        f"or reply to an SMS page with: 1 {facts.reply_code}\n"
    )
    enqueue(
        conn,
        [
            {
                "kind": "mail",
                "purpose": "page_fallback",
                "idempotency_key": f"page_fallback:{page['id']}:{why}",
                "ticket_id": ticket["id"],
                "recipient": to.lower(),
                "payload": mail_payload(
                    from_address=from_address,
                    to_address=to,
                    to_name="QRC",
                    rendered={
                        "subject": f"[{facts.priority} PAGE] {facts.number} {facts.subject}"[:200],
                        "text": text,
                    },
                    message_id=new_message_id(from_address, "page"),
                    in_reply_to=None,
                    references=[],
                    auto_submitted="auto-generated",
                ),
            }
        ],
        now,
    )
    return True


def _fallbacks_due(engine: Engine, settings: Settings, now: dt.datetime) -> int:
    """Page by e-mail to the QRC list where the provider has been unreachable for too long."""
    if not settings.paging.fallback_email:
        return 0
    limit = now - dt.timedelta(seconds=_seconds(settings.paging.fallback_after))
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
    sent = 0
    for page_id in ids:
        with engine.begin() as conn:
            page = lock_page(conn, page_id)
            if page is None or page["fallback_sent_at"] is not None or page["provider_down_since"] is None:
                continue
            ticket = ticket_row(conn, page["ticket_id"])
            if _fallback_mail(conn, settings, page, ticket, "provider", now):
                conn.execute(
                    update(_pages).where(_pages.c.id == page_id).values(fallback_sent_at=now, updated_at=now)
                )
                conn.execute(
                    ticket_event_table.insert(),
                    [
                        event(
                            page["ticket_id"],
                            "page_fallback_email",
                            {
                                "page": page_id,
                                "to": settings.paging.fallback_email,
                                "down_since": page["provider_down_since"],
                            },
                            now,
                        )
                    ],
                )
                log.warning("page_fallback_email", page=page_id, ticket=ticket["number"])
                sent += 1
    return sent


# --------------------------------------------------------------------------- attempts


def previous_position(page: Mapping[str, Any], steps: int) -> tuple[int, int]:
    """(round, step) of the step that ran last."""
    if page["step"] == 0:
        return page["round"] - 1, steps - 1
    return page["round"], page["step"] - 1


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
    conn.execute(
        ticket_event_table.insert(),
        [
            event(
                page["ticket_id"],
                "page_attempt_failed",
                {
                    "page": page["id"],
                    "person": attempt["person"],
                    "channel": attempt["channel"],
                    "error_code": attempt["error_code"],
                    "error": attempt["error"],
                },
                now,
            )
        ],
    )
    if page["state"] != "active":
        return
    policy = json.loads(page["policy"])
    ticket = ticket_row(conn, page["ticket_id"])
    if (
        attempt["channel"] == "call"
        and REDIAL_ERRORS & {attempt["error"], attempt["error_code"]}
        and attempt["retry"] < policy.get("call_retries", 0)
    ):
        person = _Reach(name=attempt["person"], phone=attempt["address"])
        later = now + dt.timedelta(seconds=policy.get("call_retry_after_seconds", 60))
        _queue_attempt(
            conn,
            page,
            ticket,
            person,
            "call",
            round_=attempt["round"],
            step=attempt["step"],
            retry=attempt["retry"] + 1,
            now=now,
            not_before=later,
        )
        return
    steps = policy.get("steps") or []
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
            conn, page, reason=f"every attempt of step {last_step + 1} failed", actor="intaked", now=now
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
    conn.execute(
        ticket_event_table.insert(),
        [event(page["ticket_id"], "page_escalated", {"page": page["id"], "why": reason}, now, actor)],
    )
    log.warning("page_escalated", page=page["id"], why=reason)
    return True


# --------------------------------------------------------------------------- acknowledgement


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
    ticket = ticket_row(conn, page["ticket_id"])
    if page["state"] not in ("active", "exhausted"):  # a late answer to a given-up page still counts
        return AckResult(False, page_id, ticket["number"], page["state"], page["acknowledged_by"])
    _end(conn, page, "acknowledged", now, acknowledged_at=now, acknowledged_by=by, ack_channel=channel)
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
    cancelled = _cancel_outstanding(conn, page, ticket, now)
    confirmed = _confirm(conn, settings, page, ticket, by, now)
    conn.execute(
        ticket_event_table.insert(),
        [
            event(
                ticket["id"],
                "page_acknowledged",
                {
                    "page": page_id,
                    "by": by,
                    "channel": channel,
                    "cancelled": cancelled,
                    "confirmed_to": confirmed,
                },
                now,
                by,
            )
        ],
    )
    log.info("page_acknowledged", page=page_id, ticket=ticket["number"], by=by, channel=channel)
    return AckResult(True, page_id, ticket["number"], "acknowledged", by)


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
    ticket = ticket_row(conn, ticket_id)
    _end(conn, page, "cancelled", now)
    cancelled = _cancel_outstanding(conn, page, ticket, now)
    conn.execute(
        ticket_event_table.insert(),
        [
            event(
                ticket_id,
                "page_cancelled",
                {"page": page_id, "why": reason, "cancelled": cancelled},
                now,
                actor,
            )
        ],
    )
    return True


def _cancel_outstanding(
    conn: Connection, page: Mapping[str, Any], ticket: Mapping[str, Any], now: dt.datetime
) -> int:
    """Cancel unsent SMS and calls; hang up calls that are queued or ringing at the provider."""
    queued = conn.execute(
        select(_attempts.c.id, _attempts.c.outbox_id).where(
            _attempts.c.page_id == page["id"], _attempts.c.status == "queued"
        )
    ).all()
    outbox_ids = [o for _, o in queued if o is not None]
    if outbox_ids:
        # A row already being sent cannot be taken back: its call is hung up below once it has a Sid.
        conn.execute(
            update(outbox_table)
            .where(outbox_table.c.id.in_(outbox_ids), outbox_table.c.state == "pending")
            .values(state="cancelled", last_error="page acknowledged")
        )
    still_queued = set(
        conn.execute(
            select(_attempts.c.id)
            .join(outbox_table, outbox_table.c.id == _attempts.c.outbox_id)
            .where(
                _attempts.c.page_id == page["id"],
                _attempts.c.status == "queued",
                outbox_table.c.state == "cancelled",
            )
        ).scalars()
    )
    if still_queued:
        conn.execute(
            update(_attempts).where(_attempts.c.id.in_(still_queued)).values(status="cancelled", ended_at=now)
        )
    live_calls = conn.execute(
        select(_attempts.c.id, _attempts.c.address).where(
            _attempts.c.page_id == page["id"],
            _attempts.c.channel == "call",
            _attempts.c.status.in_(("queued", "sent", "ringing")),
        )
    ).all()
    enqueue(
        conn,
        [
            {
                "kind": "call_cancel",
                "purpose": "page",
                "idempotency_key": f"call_cancel:{attempt_id}",
                "ticket_id": ticket["id"],
                "recipient": address,
                "payload": {"attempt_id": attempt_id},
            }
            for attempt_id, address in live_calls
        ],
        now,
    )
    return len(still_queued) + len(live_calls)


def _confirm(
    conn: Connection,
    settings: Settings,
    page: Mapping[str, Any],
    ticket: Mapping[str, Any],
    by: str,
    now: dt.datetime,
) -> list[str]:
    """SMS the acknowledger and everyone already paged (an SMS or call that left us, answered
    or not) that the page is acknowledged, so no one else acts on it."""
    reached = conn.execute(
        select(_attempts.c.person, func.min(_attempts.c.address))
        .where(
            _attempts.c.page_id == page["id"],
            _attempts.c.channel.in_(("sms", "call")),
            or_(_attempts.c.status.in_(REACHED_STATUSES), _attempts.c.sent_at.is_not(None)),
        )
        .group_by(_attempts.c.person)
    ).all()
    people = {person: address for person, address in reached}
    if by not in people:
        try:
            acker = _resolve(conn, settings, {"person": by}, now)
        except (KeyError, LookupError, ValueError):
            acker = None
        if acker is not None and getattr(acker, "phone", None):
            people[by] = acker.phone
    rows = [
        {
            "kind": "sms",
            "purpose": "page_confirm",
            "idempotency_key": f"page_confirm:{page['id']}:{person}",
            "ticket_id": ticket["id"],
            "recipient": address,
            "payload": {
                "to": address,
                "body": confirmation_sms(
                    ticket["number"], page["priority"], by, to_acknowledger=person == by
                ),
            },
        }
        for person, address in sorted(people.items())
    ]
    enqueue(conn, rows, now)
    return sorted(people)


def page_for_ticket(conn: Connection, number: str) -> Any:
    """The ticket's newest page."""
    row = (
        conn.execute(
            select(_pages)
            .join(_tickets, _tickets.c.id == _pages.c.ticket_id)
            .where(_tickets.c.number == number)
            .order_by(_pages.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise PageNotFound(f"{number} has no page")
    return row


def acknowledge_ticket(
    engine: Engine, settings: Settings, number: str, *, by: str, now: dt.datetime | None = None
) -> AckResult:
    """``intaked page ack NUMBER --by NAME``."""
    now = now or utcnow()
    with engine.begin() as conn:
        page = page_for_ticket(conn, number)
        return acknowledge(conn, settings, page["id"], by=by, channel="cli", now=now)


def timeline(conn: Connection, number: str) -> tuple[Any, list[Any]]:
    """The page of ticket ``number`` and its attempts, oldest first (``intaked page show``)."""
    page = page_for_ticket(conn, number)
    attempts = (
        conn.execute(select(_attempts).where(_attempts.c.page_id == page["id"]).order_by(_attempts.c.id))
        .mappings()
        .all()
    )
    return page, list(attempts)
