"""Enforcing the deadlines: a pass over the tickets whose next check has come sends the warnings
(``sla.warn_at`` of a target, to the team) and records the breaches (mailed to the team's lead and
the team), each once per ticket and target (outbox idempotency keys), in the transaction that
records them. A breach once recorded stays recorded. A breach notice sent to a team's lead is an
escalation (seed 003's 升級, a manager steps in): ``escalation_count`` + 1 and an ``escalated``
event, once per breach."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import Engine, select

from intaked.outbound.compose import new_message_id, render_notice
from intaked.outbound.notices import notice_mail
from intaked.outbound.outbox import enqueue
from intaked.sla.commitments import commitment_event
from intaked.sla.context import SlaContext
from intaked.sla.deadlines import compute
from intaked.sla.tracker import event, iso, write_changes
from intaked.store.dialect import try_lock_key
from intaked.store.models import ticket_table
from intaked.store.types import utcnow

CHECK_LOCK = 0x1A7AED01  # PostgreSQL advisory lock keys: one checker / sweeper at a time
_t = ticket_table
log = structlog.get_logger(__name__)


def check_due(engine: Engine, ctx: SlaContext, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Warn and record breaches for tickets whose next check has come; returns how many were looked at."""
    now = now or utcnow()
    with engine.begin() as conn:
        if not try_lock_key(conn, CHECK_LOCK):
            return 0
        rows = (
            conn.execute(
                select(_t)
                .where(_t.c.sla_next_check_at <= now, _t.c.status != "closed")
                .order_by(_t.c.sla_next_check_at)
                .limit(limit)
            )
            .mappings()
            .all()
        )
        updates: list[tuple[int, dict[str, Any]]] = []
        events: list[dict[str, Any]] = []
        mails: list[dict[str, Any]] = []
        for row in rows:
            values, row_events, row_mails = _enforce(ctx, row, now)
            updates.append((row["id"], values))
            events.extend(row_events)
            mails.extend(row_mails)
        write_changes(conn, updates, events)
        enqueue(conn, mails, now)
    _log_events(events, {row["id"]: row for row in rows})
    return len(rows)


def _log_events(events: list[dict[str, Any]], rows: Mapping[int, Mapping[Any, Any]]) -> None:
    """One log line per warning (``sla_warning``) and breach (``sla_breach``) once committed, with
    the ticket's number, priority and the target (docs/operations.md, "Log events and fields")."""
    for item in events:
        if not item["kind"].startswith("sla_"):
            continue  # the escalation a breach notice to a lead is: the breach's line says it
        row = rows[item["ticket_id"]]
        detail = json.loads(item["detail"]) if isinstance(item["detail"], str) else item["detail"]
        emit = log.warning if item["kind"] == "sla_breach" else log.info
        emit(
            item["kind"],
            ticket=row["number"],
            priority=row["priority"],
            team=row["team"],
            target=detail.get("target"),
            due_at=detail.get("due_at"),
        )


def _enforce(
    ctx: SlaContext, row: Mapping[Any, Any], now: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    deadlines = compute(ctx, row)
    values: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    mails: list[dict[str, Any]] = []
    status = row["status"]

    def due(instant: dt.datetime | None) -> bool:
        return instant is not None and instant <= now

    def happened(
        target: str, what: str, deadline: dt.datetime | None, column: str, at: dt.datetime | None
    ) -> None:
        values[column] = at or now
        detail = {"target": target, "due_at": iso(deadline)}
        events.append(event(row["id"], f"sla_{what}", detail, now))
        mails.extend(notifications(ctx, row, target, what, deadline))
        lead = breach_lead(ctx, row) if what == "breach" else None
        if lead is not None:
            count = values.get("escalation_count", row["escalation_count"])
            values["escalation_count"] = count + 1
            events.append(_escalated(row["id"], lead, count, target, deadline, now))

    if row["priority"] is None and row["triage_breached_at"] is None and due(deadlines.triage_due_at):
        happened("triage", "breach", deadlines.triage_due_at, "triage_breached_at", deadlines.triage_due_at)
    targets = (
        (
            "response",
            deadlines.response_warn_at,
            deadlines.response_due_at,
            row["first_response_at"] is None and status == "new",
        ),
        (
            "resolution",
            deadlines.resolution_warn_at,
            deadlines.resolution_due_at,
            row["resolved_at"] is None and status in ("new", "open"),
        ),
    )
    for target, warn_at, due_at, running in targets:
        if not running:
            continue
        if row[f"{target}_warned_at"] is None and due(warn_at):
            happened(target, "warning", due_at, f"{target}_warned_at", now)
        if row[f"{target}_breached_at"] is None and due(due_at):
            happened(target, "breach", due_at, f"{target}_breached_at", due_at)
    after = compute(ctx, {**row, **values})
    values["sla_next_check_at"] = after.next_check_at
    return values, events, mails


def breach_lead(ctx: SlaContext, row: Mapping[Any, Any]) -> tuple[str, str] | None:
    """The team (its name) whose lead a breach of ``row`` is mailed to, and the lead's address;
    None when the ticket's team (else the triage team) is not configured or has no lead."""
    team_name = row["team"] or ctx.settings.triage.team
    team = ctx.settings.teams.get(team_name)
    if team is None or not team.lead_email:
        return None
    return team_name, team.lead_email


def _escalated(
    ticket_id: int,
    lead: tuple[str, str],
    count: int,
    target: str,
    deadline: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """The ``escalated`` event of a breach notice sent to the team's lead (count: before it)."""
    team, address = lead
    detail = {
        "to": team,
        "address": address,
        "reason": f"{target} target breached",
        "target": target,
        "due_at": iso(deadline),
    }
    return commitment_event(
        ticket_id,
        "escalated",
        now,
        before={"escalation_count": count},
        after={"escalation_count": count + 1},
        detail=detail,
    )


def notifications(
    ctx: SlaContext, row: Mapping[Any, Any], target: str, what: str, deadline: dt.datetime | None
) -> list[dict[str, Any]]:
    """The outbox mails for a warning (to the team) or a breach (to the team's lead and the team)."""
    settings = ctx.settings
    team_name = row["team"] or settings.triage.team
    team = settings.teams.get(team_name)
    if team is None:
        return []
    recipients = [team.email] if what == "warning" else [team.lead_email, team.email]
    calendar = ctx.calendar_for(row["team"])
    context = {
        "ticket": {
            k: row[k]
            for k in ("number", "subject", "status", "priority", "requester_email", "requester_name")
        },
        "team": team_name,
        "target": target,
        "what": what,
        "due_local": deadline.astimezone(calendar.tz).strftime("%Y-%m-%d %H:%M %Z") if deadline else "",
    }
    purpose = f"sla_{what}"
    rendered = render_notice(purpose, context, settings.acknowledgements.templates_dir)
    mails = []
    for recipient in dict.fromkeys(r for r in recipients if r):
        key = f"{purpose}:{row['id']}:{target}:{recipient}"[:255]
        message_id = new_message_id(settings.outbound_mail.from_address, f"sla-{what}")
        mails.append(
            notice_mail(
                settings,
                recipient,
                rendered,
                purpose=purpose,
                key=key,
                ticket_id=row["id"],
                message_id=message_id,
            )
        )
    return mails
