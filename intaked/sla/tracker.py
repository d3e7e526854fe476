"""Keeping deadlines current and enforcing them (blocking passes, run on a database thread).

:func:`sync_tickets` notices what changed on a ticket since its deadlines were last computed,
whoever changed it (intaked's commands, an agent UI writing ``tickets.priority`` or ``status``
directly): the snapshot columns ``sla_priority``, ``sla_status`` and ``sla_occurred_at`` hold what
the deadlines were computed from, and ``calendar`` the calendar they were counted on, so a ``team``
written by another tool whose calendar differs is noticed too. It records first response,
resolution, reopening and closing times, pauses and resumes the resolution clock while the ticket
waits on the requester, and recomputes the deadlines and the commitments that follow them
(intaked/sla/commitments.py); a ``commitment_at`` another tool wrote differs from
``sla_commitment_at`` and is noticed the same way. :func:`check_due` sends the warnings
(``sla.warn_at`` of a target) and records the breaches of tickets whose ``sla_next_check_at`` has
come, each once per ticket and target (outbox idempotency keys; in ``enforcement.py``).
:func:`recompute_open` redoes every
open ticket's deadlines after a calendar changed. A breach once recorded stays recorded.

Every node sharing the store runs the sync and the recomputation (intaked/scheduler.py): both
lock the rows they rewrite, so a change is recorded once whichever nodes look at it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, and_, bindparam, case, literal, or_, select, update

from intaked.sla.commitments import keep_current
from intaked.sla.context import SlaContext
from intaked.sla.deadlines import Deadlines, compute
from intaked.store.dialect import locked
from intaked.store.models import message_table, ticket_event_table, ticket_table
from intaked.store.types import utcnow
from intaked.surveys.sending import queue_closed_surveys

log = structlog.get_logger(__name__)
ACTOR = "intaked"
OPEN_STATUSES = ("new", "open", "pending", "resolved")
#: Quarantined: no deadlines, but a release written by another tool is noticed (sla_status "spam").
WATCHED_STATUSES = (*OPEN_STATUSES, "spam")
_t = ticket_table
#: What an upper layer does, in the sync's transaction, with tickets it finds newly resolved by
#: another tool (their rows with the sync's values): a major incident's linked tickets resolved with it
#: and the RCA follow-ups (intaked/tickets/lifecycle.py ``resolved_elsewhere``).
ResolvedHook = Callable[[Connection, Any, Sequence[Mapping[str, Any]], dt.datetime], object]
RELOCK_CHUNK = 500  # ids per IN list when recompute_open locks the rows it rewrites
_RECOMPUTED_KEYS = ("triage_due_at", "response_due_at", "resolution_due_at", "auto_close_at")
COMPUTED_COLUMNS = (
    "calendar",
    "triage_due_at",
    "response_due_at",
    "resolution_due_at",
    "auto_close_at",
    "sla_next_check_at",
    "sla_snapshot",
)


def _team_calendar(ctx: SlaContext) -> Any:
    """SQL for the calendar a ticket's ``team`` counts on (``SlaContext.calendar_name_for``)."""
    default = ctx.settings.sla.calendar
    own = {name: team.calendar for name, team in ctx.settings.teams.items() if team.calendar}
    if not own:
        return literal(default)
    return case(own, value=_t.c.team, else_=literal(default))


def _changed(ctx: SlaContext) -> Any:
    return and_(
        or_(_t.c.sla_status.is_(None), _t.c.sla_status.in_(WATCHED_STATUSES)),  # index: never all closed ones
        or_(
            _t.c.sla_status.is_(None),
            _t.c.sla_status != _t.c.status,
            and_(_t.c.priority.is_(None), _t.c.sla_priority.is_not(None)),
            and_(_t.c.priority.is_not(None), _t.c.sla_priority.is_(None)),
            _t.c.priority != _t.c.sla_priority,
            and_(_t.c.occurred_at.is_not(None), _t.c.sla_occurred_at.is_(None)),
            _t.c.occurred_at != _t.c.sla_occurred_at,
            _t.c.calendar.is_(None),
            _t.c.calendar != _team_calendar(ctx),  # the team (or its calendar) changed
            # another tool wrote the commitment (intaked/sla/commitments.py)
            and_(_t.c.commitment_at.is_(None), _t.c.sla_commitment_at.is_not(None)),
            and_(_t.c.commitment_at.is_not(None), _t.c.sla_commitment_at.is_(None)),
            _t.c.commitment_at != _t.c.sla_commitment_at,
        ),
    )


def event(
    ticket_id: int, kind: str, detail: Mapping[Any, Any], now: dt.datetime, actor: str = ACTOR
) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "at": now,
        "actor": actor,
        "kind": kind,
        "before": None,
        "after": None,
        "detail": json.dumps(detail, ensure_ascii=False, default=str),
    }


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def deadline_detail(deadlines: Deadlines) -> dict[str, Any]:
    return {
        "calendar": deadlines.calendar,
        "triage_due_at": iso(deadlines.triage_due_at),
        "response_due_at": iso(deadlines.response_due_at),
        "resolution_due_at": iso(deadlines.resolution_due_at),
        "auto_close_at": iso(deadlines.auto_close_at),
    }


def apply_changes(
    ctx: SlaContext, row: Mapping[Any, Any], now: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The column values and events that bring one ticket's working-time state up to date."""
    values: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    ticket = dict(row)
    old_status, status = row["sla_status"], row["status"]
    if old_status != status:
        if status not in ("new", "spam") and row["first_response_at"] is None:
            values["first_response_at"] = now
        if status == "resolved" and row["resolved_at"] is None:
            values["resolved_at"] = now
        if old_status == "resolved" and status != "resolved" and status != "closed":
            values.update(resolved_at=None, resolved_by=None)
        if status == "closed" and row["closed_at"] is None:
            values["closed_at"] = now
        if status != "closed" and old_status == "closed":
            values["closed_at"] = None
        pauses = ctx.settings.sla.pending_pauses_resolution
        if status == "pending" and pauses and row["sla_paused_at"] is None:
            values["sla_paused_at"] = now
        if status != "pending" and row["sla_paused_at"] is not None:
            calendar = ctx.calendar_for(row["team"])
            policy = ctx.policies.get(row["priority"] or "")
            clock = policy.resolution if policy else ctx.triage
            held = clock.elapsed(calendar, row["sla_paused_at"], now)
            values["sla_paused_at"] = None
            values["sla_paused_seconds"] = float(row["sla_paused_seconds"] or 0) + held.total_seconds()
            events.append(event(row["id"], "sla_resumed", {"held_seconds": held.total_seconds()}, now))
        if "sla_paused_at" in values and values["sla_paused_at"] == now:
            events.append(event(row["id"], "sla_paused", {"reason": "waiting on the requester"}, now))
    if row["priority"] is not None and row["triaged_at"] is None:
        values["triaged_at"] = now
    ticket.update(values)
    deadlines = compute(ctx, ticket)
    new_columns = deadlines.columns()
    old = {
        key: row[key] for key in ("triage_due_at", "response_due_at", "resolution_due_at", "auto_close_at")
    }
    if any(_differs(old[key], new_columns[key]) for key in old):
        events.append(event(row["id"], "deadlines_set", deadline_detail(deadlines), now))
    values.update(new_columns)
    values.update(
        sla_status=status,
        sla_priority=row["priority"],
        sla_occurred_at=row["occurred_at"],
    )
    commitments, commitment_events = keep_current(row, deadlines.resolution_due_at, now)
    values.update(commitments)
    return values, events + commitment_events


def _differs(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    if a is None or b is None:
        return a is not b
    return a != b


def write_changes(
    conn: Connection, updates: Sequence[tuple[int, dict[str, Any]]], events: Sequence[dict[str, Any]]
) -> None:
    """Write the updates, one executemany per set of changed columns, and the events."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for ticket_id, values in updates:
        keys = tuple(sorted(values))
        groups.setdefault(keys, []).append({"b_id": ticket_id, **{f"b_{k}": v for k, v in values.items()}})
    for keys, params in groups.items():
        conn.execute(
            update(_t).where(_t.c.id == bindparam("b_id")).values({k: bindparam(f"b_{k}") for k in keys}),
            params,
        )
    if events:
        conn.execute(ticket_event_table.insert(), list(events))


def sync_tickets(
    engine: Engine,
    ctx: SlaContext,
    now: dt.datetime | None = None,
    limit: int = 500,
    on_resolved: ResolvedHook | None = None,
) -> int:
    """Bring up to ``limit`` changed tickets up to date; returns how many were. ``on_resolved``
    is given the tickets whose status became ``resolved``."""
    now = now or utcnow()
    with engine.begin() as conn:
        # Locked, skipping rows another node's sync holds: nodes syncing at once split the changed
        # tickets, and one that comes after a commit finds them current (each change once).
        changed = locked(
            conn, select(_t).where(_changed(ctx)).order_by(_t.c.id).limit(limit), skip_locked=True
        )
        rows = conn.execute(changed).mappings().all()
        updates: list[tuple[int, dict[str, Any]]] = []
        events: list[dict[str, Any]] = []
        for row in rows:
            values, row_events = apply_changes(ctx, row, now)
            updates.append((row["id"], values))
            events.extend(row_events)
        write_changes(conn, updates, events)
        queue_closed_surveys(conn, ctx.settings, rows, now)  # a status written "closed" (intaked/surveys/)
        if on_resolved is not None:
            resolved = [
                {**row, **values}
                for row, (_, values) in zip(rows, updates, strict=True)
                if values["sla_status"] == "resolved" and row["sla_status"] != "resolved"
            ]
            if resolved:
                on_resolved(conn, ctx.settings, resolved, now)
        replied = _first_replies_by_people(conn, ctx, now)
    numbers = {row["id"]: row["number"] for row in rows}
    for ticket_id, values in updates:
        log.info(
            "deadlines_synced",
            ticket=numbers[ticket_id],
            status=values["sla_status"],
            priority=values["sla_priority"],
        )
    return len(rows) + replied


# The Message-IDs intaked gives its own mail (outbound/compose.new_message_id): "<purpose>.<hex>@domain".
_OUR_MESSAGE_ID = re.compile(r"^[a-z_-]+\.[0-9a-f]{32}@")
# skipped in SQL already
OUR_PURPOSES = ("ack", "reply_notice", "sla-warning", "sla-breach", "resolved", "extension", "escalation")


def _first_replies_by_people(conn: Connection, ctx: SlaContext, now: dt.datetime) -> int:
    """A ticket still ``new`` that got an outbound message from a person (an agent UI's reply,
    stored in ``messages`` with direction ``out``) has had its first response then; intaked's own
    mail (acknowledgements, notices) does not count."""
    m = message_table
    candidates = conn.execute(
        select(_t.c.id, m.c.sender, m.c.created_at, m.c.header_message_id)
        .join(m, m.c.ticket_id == _t.c.id)
        .where(
            _t.c.status == "new",
            _t.c.first_response_at.is_(None),
            m.c.direction == "out",
            or_(
                m.c.header_message_id.is_(None),
                and_(*(m.c.header_message_id.not_like(f"{purpose}.%") for purpose in OUR_PURPOSES)),
            ),
        )
        .order_by(m.c.id)
    ).all()
    first: dict[int, Any] = {}
    for row in candidates:
        if row.id not in first and not _OUR_MESSAGE_ID.match(row.header_message_id or ""):
            first[row.id] = row
    if not first:
        return 0
    still_new = select(_t).where(_t.c.id.in_(list(first)), _t.c.first_response_at.is_(None))
    tickets = conn.execute(locked(conn, still_new, skip_locked=True)).mappings().all()
    updates = []
    events = []
    for ticket in tickets:
        reply = first[ticket["id"]]
        values = {"first_response_at": reply.created_at, "first_response_by": reply.sender}
        values["sla_next_check_at"] = compute(ctx, {**ticket, **values}).next_check_at
        updates.append((ticket["id"], values))
        detail = {"by": reply.sender, "message_id": reply.header_message_id}
        events.append(event(ticket["id"], "first_response", detail, now))
    write_changes(conn, updates, events)
    return len(updates)


def recompute_open(
    engine: Engine, ctx: SlaContext, calendar: str | None = None, now: dt.datetime | None = None
) -> int:
    """Recompute the deadlines of every open ticket (on ``calendar``, or all); returns how many
    tickets got different deadlines. Runs in batches of one transaction each."""
    now = now or utcnow()
    changed = 0
    last_id = 0
    while True:
        with engine.begin() as conn:
            rows = (
                conn.execute(
                    select(_t)
                    .where(_t.c.status.in_(OPEN_STATUSES), _t.c.id > last_id)
                    .order_by(_t.c.id)
                    .limit(5000)
                )
                .mappings()
                .all()
            )
            if not rows:
                return changed
            last_id = rows[-1]["id"]
            stale = [row["id"] for row in rows if _recomputed(ctx, row, calendar) is not None]
            for start in range(0, len(stale), RELOCK_CHUNK):
                # Read again, locked: a node recomputing at the same time waits for this one's
                # commit, then finds the rows current and writes no event twice.
                chunk = select(_t).where(_t.c.id.in_(stale[start : start + RELOCK_CHUNK])).order_by(_t.c.id)
                held = conn.execute(locked(conn, chunk)).mappings().all()
                changed += _write_recomputed(conn, ctx, held, calendar, now)


def _recomputed(ctx: SlaContext, row: Mapping[Any, Any], calendar: str | None) -> Deadlines | None:
    """The ticket's deadlines recomputed, when they differ from its columns (on ``calendar``, or any)."""
    if calendar is not None and ctx.calendar_name_for(row["team"]) != calendar:
        return None
    deadlines = compute(ctx, row)
    columns = deadlines.columns()
    if not any(_differs(row[key], columns[key]) for key in _RECOMPUTED_KEYS):
        return None
    return deadlines


def _write_recomputed(
    conn: Connection,
    ctx: SlaContext,
    rows: Sequence[Mapping[Any, Any]],
    calendar: str | None,
    now: dt.datetime,
) -> int:
    """Write the recomputed deadlines of the ``rows`` that still need them, and the commitments
    that follow them, with their events."""
    updates: list[tuple[int, dict[str, Any]]] = []
    events: list[dict[str, Any]] = []
    for row in rows:
        deadlines = _recomputed(ctx, row, calendar)
        if deadlines is None:
            continue
        commitments, commitment_events = keep_current(row, deadlines.resolution_due_at, now)
        updates.append((row["id"], {**deadlines.columns(), **commitments}))
        detail = {**deadline_detail(deadlines), "reason": "calendar changed"}
        events.append(event(row["id"], "deadlines_set", detail, now))
        events.extend(commitment_events)
    write_changes(conn, updates, events)
    return len(updates)
