"""The internal reporting chain of a level (seed 004: "reports up by severity", 組長 → 副局長 →
局長): when a ticket's level is first set or raised to N, ``[security.levels.N] notify`` is
mailed (once per ticket, level and address) and, with ``page = true``, the on-call is paged.

The paging engine pages by priority (intaked/paging/policy.py), not by team: a level that pages
starts a page under the P1 escalation policy (the QRC, as a P1 ticket does), with the reason
"security incident level N". The page ends as any page does (acknowledged, the ticket resolved,
a priority below P2 set on the ticket)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import Connection

from intaked.config import Settings
from intaked.paging.pages import start_page
from intaked.security.levels import LEVEL_NAMES, letter_of
from intaked.security.mails import local, mail, recipients, ticket_event

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
        )
        detail["page_id"] = page_id
    log.info("security_chain", ticket=number, level=level, mailed=len(addresses), page=config.page)
    return mails, [ticket_event(row["id"], "security_chain", now, detail)]
