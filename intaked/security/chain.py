"""The internal reporting chain of a level (seed 004: "reports up by severity", 組長 → 副局長 →
局長): when a ticket's level is first set or raised to N, ``[security.levels.N] notify`` is
mailed (once per ticket, level and address) and, with ``page = true``, the on-call is paged.

A level that pages starts a P1 page of the security team (``security.team``, intaked/paging/
policy.py ``freeze_policy``): its first step pages the team's ``[teams.<team>] oncall`` on the
channels of the team's ``policy`` (else the P1 policy), and its later steps escalate as that
policy says; a team that names neither an on-call nor a policy is paged through the P1 policy
(the QRC). The reason is "security incident level N". The page ends as any page does
(acknowledged, the ticket resolved, a priority below P2 set on the ticket), or when the level is
lowered to one that does not page (intaked/security/tracker.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import Connection, select

from intaked.config import Settings
from intaked.paging.pages import cancel_page, start_page
from intaked.security.levels import LEVEL_NAMES, letter_of
from intaked.security.mails import local, mail, recipients
from intaked.sla.tracker import event
from intaked.store.models import ticket_event_table

PURPOSE = "security_chain"
log = structlog.get_logger(__name__)


def run_chain(
    conn: Connection, settings: Settings, row: Mapping[Any, Any], level: int, now: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The outbox mails and the events of level ``level``'s chain for ``row``; a page is started
    in ``conn`` at once when the level says so."""
    config = settings.security.level(level)
    number = row["number"]
    addresses, unknown = recipients(settings, config.notify)
    text = (
        f"資通安全事件等級 {LEVEL_NAMES[level]}\n"
        f"Security incident level {level} ({letter_of(level)})\n\n"
        f"案件 / Ticket: {number}\n"
        f"主旨 / Subject: {row['subject'] or '-'}\n"
        f"知悉時間 / Aware at: {local(settings, row['security_aware_at'] or row['created_at'])}\n"
        f"通報期限 / Notify the authority by: {local(settings, row['security_notify_due_at'])}\n"
        f"損害控制期限 / Damage control by: {local(settings, row['security_contain_due_at'])}\n"
    )
    subject = f"[{number}] 資安事件第{level}級 / Security incident level {level}"
    mails = [
        mail(
            settings, row["id"], to, subject, text, purpose=PURPOSE, key=f"{PURPOSE}:{row['id']}:{level}:{to}"
        )
        for to in addresses
    ]
    detail: dict[str, Any] = {"level": level, "to": addresses, "page": config.page}
    if unknown:
        detail["unknown"] = unknown
        log.error("security_chain_unknown_recipient", ticket=number, level=level, names=unknown)
    if config.page:
        page_id = start_page(
            conn,
            settings,
            row["id"],
            "P1",
            reason=f"security incident level {level}",
            unconfirmed=False,
            actor="intaked",
            now=now,
            team=settings.security.team,
        )
        detail["page_id"] = page_id
    log.info("security_chain", ticket=number, level=level, mailed=len(addresses), page=config.page)
    return mails, [event(row["id"], "security_chain", detail, now)]


LOWERED_PURPOSE = "security_lowered"


def chains_run(conn: Connection, ticket_id: int) -> set[int]:
    """The levels whose chain ran for the ticket (its ``security_chain`` events)."""
    events = ticket_event_table
    details = conn.execute(
        select(events.c.detail).where(events.c.ticket_id == ticket_id, events.c.kind == "security_chain")
    ).scalars()
    return {int(json.loads(detail)["level"]) for detail in details if detail}


def run_lowering(
    conn: Connection, settings: Settings, row: Mapping[Any, Any], old: int, level: int, now: dt.datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The level went down from ``old`` to ``level``: whoever the chains that ran for levels above
    ``level`` told is told of it (once per ticket, new level and address), and the chain's page
    is cancelled when level ``level`` does not page (a page of a P1/P2 priority set on the
    ticket stays)."""
    number = row["number"]
    told: list[str] = []
    for above in sorted(chains_run(conn, row["id"]), reverse=True):
        if above > level:
            told += recipients(settings, settings.security.level(above).notify)[0]
    addresses = list(dict.fromkeys(told))
    subject = f"[{number}] 資安事件等級調降為第{level}級 / Security incident lowered to level {level}"
    text = (
        f"資通安全事件等級由 {LEVEL_NAMES[old]} 調降為 {LEVEL_NAMES[level]}\n"
        f"Security incident level lowered from {old} ({letter_of(old)}) to {level} ({letter_of(level)})\n\n"
        f"案件 / Ticket: {number}\n"
        f"主旨 / Subject: {row['subject'] or '-'}\n"
        f"損害控制期限 / Damage control by: {local(settings, row['security_contain_due_at'])}\n"
    )
    key = f"{LOWERED_PURPOSE}:{row['id']}:{level}"
    mails = [
        mail(settings, row["id"], to, subject, text, purpose=LOWERED_PURPOSE, key=f"{key}:{to}")
        for to in addresses
    ]
    detail: dict[str, Any] = {"from": old, "to": level, "told": addresses}
    if not settings.security.level(level).page and row["priority"] not in ("P1", "P2"):
        reason = f"security incident lowered to level {level}"
        detail["page_cancelled"] = cancel_page(conn, row["id"], reason=reason, actor="intaked", now=now)
    log.info("security_level_lowered", ticket=number, old=old, level=level, told=len(addresses))
    return mails, [event(row["id"], "security_level_lowered", detail, now)]
