"""Who gets a satisfaction survey when their ticket closes, by which channel, and its outbox row,
written in the transaction that closed the ticket (the sweeper, the SLA tracker noticing a status
written by another tool).

A closed ticket gets at most one survey (``surveys.ticket_id`` is unique, the outbox key is
``survey:<ticket id>``), so a ticket closed twice, or a pass run twice, sends one. None goes to
a ticket from the spam quarantine, to a requester without an address, to our own or a no-reply
address, or to a ticket outside the sample (``surveys.sample_rate``, decided by a hash of the
ticket number: a rerun picks the same tickets). Each decision is an event on the ticket:
``survey_queued`` or ``survey_not_sent`` (with the reason).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, select

from intaked.config import Settings
from intaked.outbound.acks import our_addresses
from intaked.outbound.compose import mail_payload, new_message_id
from intaked.outbound.outbox import enqueue
from intaked.store.dialect import insert_or_nothing
from intaked.store.models import message_table, survey_table, ticket_table
from intaked.surveys.rows import TICKET_COLUMNS, event, record
from intaked.surveys.texts import survey_mail, survey_sms

log = structlog.get_logger(__name__)
PURPOSE = "survey"
_s = survey_table
#: Local parts of addresses nobody reads (RFC 2142 roles of mail systems, "no-reply" senders).
_NO_REPLY = re.compile(
    r"^(?:no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|bounces?)([+._-].*)?$"
)
#: Letters of SMS reply codes: no vowels (no words), none that look like digits (O, I, L, S, Z, B).
CODE_LETTERS = "CDFGHJKMNPQRTVWXY"
CODE_LENGTH = 4


@dataclass(frozen=True, slots=True)
class Target:
    channel: str  # "mail" or "sms"
    address: str


def sampled(number: str, rate: float) -> bool:
    """Whether ticket ``number`` is in the sample: a hash of the number, so always the same answer."""
    if rate >= 1.0:
        return True
    value = int.from_bytes(hashlib.sha256(number.encode()).digest()[:8], "big") / 2**64
    return value < rate


def _is_mobile(settings: Settings, phone: str | None) -> bool:
    return bool(phone) and any(str(phone).startswith(p) for p in settings.hotline.sms_ack_prefixes)


def choose(settings: Settings, ticket: Mapping[Any, Any], ours: set[str]) -> Target | str:
    """Where ``ticket``'s survey goes, or why it gets none."""
    if ticket["spam_reason"] and ticket["released_at"] is None:
        return "spam"
    channels = settings.surveys.channels
    phone, email = ticket["requester_phone"], (ticket["requester_email"] or "").strip().lower()
    target: Target | None = None
    if (
        ticket["channel"] == "phone"
        and "sms" in channels
        and settings.twilio.enabled
        and _is_mobile(settings, phone)
    ):
        target = Target("sms", str(phone))
    elif email and "mail" in channels:
        if email in ours or _NO_REPLY.match(email.partition("@")[0]):
            return f"{email} is our own or a no-reply address"
        target = Target("mail", email)
    if target is None:
        return "no address to send it to by " + " or ".join(channels)
    if not sampled(ticket["number"], settings.surveys.sample_rate):
        return f"not in the sample (surveys.sample_rate = {settings.surveys.sample_rate})"
    return target


def queue_surveys(conn: Connection, settings: Settings, ticket_ids: Iterable[int], now: dt.datetime) -> int:
    """Queue the survey of each of ``ticket_ids`` that is closed and has none yet; returns how
    many were queued."""
    ids = sorted(set(ticket_ids))
    if not settings.surveys.enabled or not ids:
        return 0
    tickets = conn.execute(
        select(*TICKET_COLUMNS).where(ticket_table.c.id.in_(ids), ticket_table.c.status == "closed")
    ).mappings()
    done = set(conn.execute(select(_s.c.ticket_id).where(_s.c.ticket_id.in_(ids))).scalars())
    ours = our_addresses(settings)
    events: list[dict[str, Any]] = []
    queued = 0
    for ticket in tickets:
        if ticket["id"] in done:
            continue
        target = choose(settings, ticket, ours)
        if isinstance(target, str):
            events.append(event(ticket["id"], "survey_not_sent", now, detail={"reason": target}))
            continue
        if _queue_one(conn, settings, ticket, target, now):
            queued += 1
            events.append(
                event(
                    ticket["id"],
                    "survey_queued",
                    now,
                    detail={"channel": target.channel, "to": target.address},
                )
            )
            log.info("survey_queued", ticket=ticket["number"], channel=target.channel)
    record(conn, events)
    return queued


def queue_closed_surveys(
    conn: Connection, settings: Settings, rows: Sequence[Mapping[Any, Any]], now: dt.datetime
) -> int:
    """:func:`queue_surveys` for the rows (as the SLA tracker read them) whose status became
    ``closed`` since it last looked (``sla_status``)."""
    closing = [r["id"] for r in rows if r["status"] == "closed" and r["sla_status"] not in (None, "closed")]
    return queue_surveys(conn, settings, closing, now)


def _queue_one(conn: Connection, settings: Settings, ticket: Any, target: Target, now: dt.datetime) -> bool:
    expires_at = now + dt.timedelta(seconds=settings.surveys.window_seconds)
    code = _new_code(conn, target.address) if target.channel == "sms" else None
    message_id = (
        new_message_id(settings.outbound_mail.from_address, PURPOSE) if target.channel == "mail" else None
    )
    values = {
        "ticket_id": ticket["id"],
        "channel": target.channel,
        "address": target.address,
        "code": code,
        "message_id": message_id,
        "state": "sent",
        "sent_at": now,
        "expires_at": expires_at,
        "invalid_answers": 0,
    }
    if not insert_or_nothing(conn, _s, values, ["ticket_id"]):
        return False  # another pass queued it
    if target.channel == "sms":
        payload: dict[str, Any] = {"to": target.address, "body": survey_sms(ticket["number"], str(code))}
    else:
        payload = _mail_payload(conn, settings, ticket, target.address, str(message_id), expires_at)
    row = {
        "kind": "sms" if target.channel == "sms" else "mail",
        "purpose": PURPOSE,
        "idempotency_key": f"{PURPOSE}:{ticket['id']}",
        "ticket_id": ticket["id"],
        "recipient": target.address,
        "payload": payload,
    }
    return enqueue(conn, [row], now) == 1


def _mail_payload(
    conn: Connection, settings: Settings, ticket: Any, to: str, message_id: str, expires_at: dt.datetime
) -> dict[str, Any]:
    """The survey mail, in the ticket's thread (its latest Message-ID) like the resolved notice."""
    m = message_table
    latest = conn.execute(
        select(m.c.header_message_id)
        .where(
            m.c.ticket_id == ticket["id"],
            m.c.header_message_id.is_not(None),
            m.c.header_message_id.not_like("call:%"),  # a hotline call's message has no mail id
            m.c.header_message_id.not_like("sms:%"),
        )
        .order_by(m.c.id.desc())
        .limit(1)
    ).scalar()
    return mail_payload(
        from_address=settings.outbound_mail.from_address,
        to_address=to,
        to_name=ticket["requester_name"],
        rendered=survey_mail(settings, ticket, expires_at),
        message_id=message_id,
        in_reply_to=latest,
        references=[latest] if latest else [],
        auto_submitted="auto-generated",
    )


def _new_code(conn: Connection, address: str) -> str:
    """A reply code no other survey to ``address`` has."""
    taken = set(conn.execute(select(_s.c.code).where(_s.c.address == address)).scalars())
    while True:
        code = "".join(secrets.choice(CODE_LETTERS) for _ in range(CODE_LENGTH))
        if code not in taken:
            return code
