"""The outbox rows a page writes: its attempts (SMS, call, mail), the hang-ups when it stops,
the confirmation SMS after an acknowledgement and the fallback mail to the QRC list.

Each row is written in the transaction of the transition that causes it, with an idempotency key
naming the page, round, step, person, channel and re-dial, so nothing is sent twice for one cause.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update

from intaked.config import Settings
from intaked.outbound.compose import mail_payload, new_message_id
from intaked.outbound.outbox import enqueue
from intaked.paging.policy import REACHED_STATUSES
from intaked.paging.rows import HeldPage, page_facts, resolve_person
from intaked.paging.texts import PageFacts, confirmation_sms, page_sms
from intaked.ports.phone import page_call_path
from intaked.store.dialect import insert_or_merge
from intaked.store.models import outbox_table, page_attempt_table

_attempts = page_attempt_table


@dataclass(frozen=True, slots=True)
class Reach:
    """How to reach one person again (a re-dial): what the first attempt used."""

    name: str
    phone: str
    email: str = ""
    display_name: str = ""


def queue_attempt(
    held: HeldPage,
    person: Any,
    channel: str,
    *,
    round_: int,
    step: int,
    retry: int,
    not_before: dt.datetime | None = None,
    body: str | None = None,
) -> int | None:
    """Write one attempt and the outbox row that carries it; None if it already exists.
    ``body``: the SMS (and mail) text instead of the page's (a convene's, intaked/paging/convene.py)."""
    address = person.email if channel == "email" else person.phone
    if not address:
        return None
    conn, page, ticket, now = held.conn, held.page, held.ticket, held.now
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
    key = f"page:{page['id']}:{round_}:{step}:{person.name}:{channel}:{retry}"
    row = _attempt_row(held.policy, page_facts(ticket, page), person, channel, address, attempt_id, body)
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


def _attempt_row(
    policy: Mapping[str, Any],
    facts: PageFacts,
    person: Any,
    channel: str,
    address: str,
    attempt_id: int,
    body: str | None = None,
) -> dict[str, Any]:
    """The outbox row's kind and payload for one attempt on ``channel``."""
    if channel == "sms":
        english = str(getattr(person, "language", "")).startswith("en")
        body = body or page_sms(facts, english=english)
        return {"kind": "sms", "payload": {"to": address, "body": body, "attempt_id": attempt_id}}
    if channel == "call":
        url = policy.get("callback_base", "") + page_call_path(attempt_id)
        return {"kind": "call", "payload": {"to": address, "url": url, "attempt_id": attempt_id}}
    from_address = policy.get("from_address", "")
    rendered = {
        "subject": f"[{facts.priority}] {facts.number} {facts.subject}"[:200],
        "text": body or page_sms(facts),
    }
    return {
        "kind": "mail",
        "payload": mail_payload(
            from_address=from_address,
            to_address=address,
            to_name=person.display_name,
            rendered=rendered,
            message_id=new_message_id(from_address, "page"),
            in_reply_to=None,
            references=[],
            auto_submitted="auto-generated",
        ),
    }


def cancel_outstanding(held: HeldPage) -> int:
    """Cancel unsent SMS and calls; hang up calls that are queued or ringing at the provider (the
    page's own: a convene's attempts, step -1, are left alone)."""
    conn, page, ticket, now = held.conn, held.page, held.ticket, held.now
    queued = conn.execute(
        select(_attempts.c.id, _attempts.c.outbox_id).where(
            _attempts.c.page_id == page["id"], _attempts.c.status == "queued", _attempts.c.step >= 0
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
                _attempts.c.step >= 0,
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
            _attempts.c.step >= 0,  # a convene's calls (step -1) are not the page's
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


def confirm_acknowledged(held: HeldPage, settings: Settings, by: str) -> list[str]:
    """SMS the acknowledger and everyone already paged (an SMS or call that left us, answered
    or not) that the page is acknowledged, so no one else acts on it."""
    conn, page, ticket, now = held.conn, held.page, held.ticket, held.now
    reached = conn.execute(
        select(_attempts.c.person, func.min(_attempts.c.address))
        .where(
            _attempts.c.page_id == page["id"],
            _attempts.c.step >= 0,
            _attempts.c.channel.in_(("sms", "call")),
            or_(_attempts.c.status.in_(REACHED_STATUSES), _attempts.c.sent_at.is_not(None)),
        )
        .group_by(_attempts.c.person)
    ).all()
    people = {person: address for person, address in reached}
    if by not in people:
        try:
            acker = resolve_person(conn, settings, {"person": by}, now)
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


def fallback_mail(held: HeldPage, settings: Settings, why: str) -> bool:
    """Page the QRC list by e-mail (nobody acknowledged, or SMS and calls cannot be sent)."""
    to = settings.paging.fallback_email
    if not to:
        return False
    from_address = settings.outbound_mail.from_address
    page = held.page
    facts = page_facts(held.ticket, page)
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
        held.conn,
        [
            {
                "kind": "mail",
                "purpose": "page_fallback",
                "idempotency_key": f"page_fallback:{page['id']}:{why}",
                "ticket_id": held.ticket["id"],
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
        held.now,
    )
    return True
